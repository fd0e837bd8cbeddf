"""A pause gives nothing away and destroys nothing: ``plans.pause_policy`` decides, from the
page through billing to the Developer Console simulator's recorded calls.

- not chosen (the default): no pause offered; a pause posted by hand is refused with why; a
  pause made in billing directly is recorded, shown, and reported to the operator, no call;
- ``keep``: the app keeps working, no platform call at pause or resume;
- ``suspend``: a Cancel at pause and an Add at resume.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import date

import pytest

from broker.config import Settings
from broker.simulators.billing.inputs import PauseInput
from tests.support.pages import Browser, PageWorld, WorldFactory
from tests.support.postgres import store_section

RESUME_ON = "2026-06-20"


@pytest.fixture
def broker_store(store_url: str) -> dict[str, object]:
    return store_section(store_url)


def text_of(html: str) -> str:
    return html_lib.unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))


def row(html: str, label: str) -> str | None:
    found = re.search(rf"<dt>{label}</dt><dd[^>]*>([^<]*)</dd>", html)
    return found.group(1) if found else None


async def started(make_world: WorldFactory, policy: str | None) -> tuple[PageWorld, Browser, str]:
    world = await make_world(plans={"pause_policy": policy} if policy else {})
    owner = await world.signed_in()
    live = await world.subscribed(owner)
    await world.settle()
    return world, owner, live


# --- not chosen: the default ---------------------------------------------------------------------


def test_the_default_pause_policy_is_not_chosen() -> None:
    assert (
        Settings(platform={"app_domain": "app", "zapikey": "k" * 16}).plans.pause_policy == "none"
    )


def test_the_replaced_on_pause_key_is_refused_naming_the_new_setting() -> None:
    with pytest.raises(ValueError, match=r"plans.on_pause was replaced by plans.pause_policy"):
        Settings(platform={"app_domain": "app", "zapikey": "k" * 16}, plans={"on_pause": "keep"})


async def test_by_default_no_pause_is_offered_and_a_posted_pause_is_refused_with_why(
    make_world: WorldFactory,
) -> None:
    world, owner, live = await started(make_world, None)
    overview = await owner.get("/manage")
    assert 'href="/manage/pause"' not in overview.text
    assert "Cancel" in overview.text  # the other actions are still there

    form = await owner.get("/manage/pause")
    posted = await owner.submit("/manage/pause", {"resume_on": RESUME_ON})
    for page in (form, posted):
        assert page.status == 409, page.text
        assert "pausing is not offered" in page.text
        assert "has not chosen whether the app keeps working during a pause" in page.text
    assert world.sim.subscriptions[live].status == "live"  # billing never asked
    assert [c.method for c in world.calls()] == ["POST"]
    assert [(a["action"], a["result"]) for a in await world.audit("pause")] == [
        ("pause", "refused: action_not_allowed"),
        ("pause", "refused: action_not_allowed"),
    ]


async def test_a_pause_made_in_billing_without_a_policy_is_shown_and_reported_to_the_operator(
    make_world: WorldFactory,
) -> None:
    world, owner, live = await started(make_world, None)
    world.sim.state.pause(live, PauseInput(resume_date=date(2026, 6, 20)))
    await world.settle()

    overview = await owner.get("/manage")
    assert re.search(r'class="status status-paused"', overview.text)
    assert row(overview.text, "Resumes on") == RESUME_ON
    assert "the vendor has not said what a pause means" in text_of(overview.text)
    [stored] = await world.rows("SELECT state, reason FROM subscriptions")
    assert stored["state"] == "applied"  # kept live on the platform, with a warning
    assert "plans.pause_policy is not chosen" in stored["reason"]
    [event] = await world.rows(
        "SELECT reason FROM webhook_events WHERE event_type = 'subscription_paused'"
    )
    assert "plans.pause_policy is not chosen" in event["reason"]
    assert [c.method for c in world.calls()] == ["POST"]  # nothing given away, nothing cancelled


# --- keep -----------------------------------------------------------------------------------------


async def test_keep_says_the_app_keeps_working_before_and_after_and_makes_no_platform_call(
    make_world: WorldFactory,
) -> None:
    world, owner, live = await started(make_world, "keep")
    form = await owner.get("/manage/pause", params={"resume_on": RESUME_ON})
    assert form.status == 200, form.text
    assert "The app keeps working while your subscription is paused." in text_of(form.text)
    assert f"Paused from today until {RESUME_ON}" in text_of(form.text)

    paused = await owner.submit("/manage/pause", {"resume_on": RESUME_ON})
    assert paused.status == 303
    overview = await owner.get("/manage")
    notice = text_of(overview.text)
    assert f"Your subscription is paused until {RESUME_ON}. The app keeps working" in notice
    assert row(overview.text, "Resumes on") == RESUME_ON
    await world.settle()
    again = await owner.get("/manage")  # the row stays after the one-time notice has gone
    assert row(again.text, "Resumes on") == RESUME_ON
    assert "paused until" not in again.text

    resumed = await owner.submit("/manage/resume")
    assert resumed.status == 303
    await world.settle()
    assert world.sim.subscriptions[live].status == "live"
    assert [c.method for c in world.calls()] == ["POST"]


async def test_preview_figures_add_up_rate_in_cents_times_days_is_the_credit(
    make_world: WorldFactory,
) -> None:
    """Standard, 5 users at 10.00 = 50.00 USD a month, term June 10 - July 9 (30 days), paused
    June 10 to June 20: 10 paid days. By Zoho's rule (docs/contracts.md §5: the day rate in
    cents, then times the days, as $3500 / 365 -> $9.58 x 60 = $574.80): 50.00 / 30 = 1.666...
    -> 1.66 a day, x 10 = 16.60. Billing credits the same when the pause ends."""
    world, owner, live = await started(make_world, "keep")
    page = await owner.get("/manage/pause", params={"resume_on": RESUME_ON})
    assert '<strong id="credit-amount">16.60 USD</strong>' in page.text
    assert "for 10 paid days at 1.66 USD a day (50.00 USD over the 30 days" in text_of(page.text)

    await owner.submit("/manage/pause", {"resume_on": RESUME_ON})
    world.sim.set_today(date(2026, 6, 20))
    assert str(world.sim.subscriptions[live].last_pause_credit) == "16.60"


# --- suspend --------------------------------------------------------------------------------------


async def test_suspend_warns_of_the_data_then_cancels_at_pause_and_adds_at_resume(
    make_world: WorldFactory,
) -> None:
    world, owner, _ = await started(make_world, "suspend")
    form = await owner.get("/manage/pause", params={"resume_on": RESUME_ON})
    words = text_of(form.text)
    assert "The app stops working for your organisation while your subscription is paused" in words
    assert "may not keep your organisation's data" in words

    assert (await owner.submit("/manage/pause", {"resume_on": RESUME_ON})).status == 303
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "DELETE"]
    overview = await owner.get("/manage")
    assert row(overview.text, "Resumes on") == RESUME_ON
    assert "The app stops working" in (row(overview.text, "While paused") or "")

    assert (await owner.submit("/manage/resume")).status == 303
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "DELETE", "POST"]
    assert world.platform.subscriptions[world.calls()[-1].zgid].active
