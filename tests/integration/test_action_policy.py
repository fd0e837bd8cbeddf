"""What each subscription status allows: one rule, used by the overview's
buttons and by every action's form and handler.

For each status the org's subscription is put into that state by a webhook, as billing would
send it; then the overview's buttons are read, and every action is tried by posting its form by
hand (and opening its GET form). What the status does not allow is refused with a 409 that says
why, audited, and reaches neither billing nor the Developer Console.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from broker.core.billing_status import BillingStatus
from broker.core.policy import (
    Action,
    SubscriptionFacts,
    allowed_actions,
    permitted,
)
from tests.support.basics import ZAPIKEY, body_of, subscription_event
from tests.support.pages import OWNER_ZGID, OWNER_ZUID, STANDARD, STANDARD_CODE, Browser, PageWorld
from tests.support.postgres import store_section


@pytest.fixture
def page_plans() -> dict[str, Any]:
    """These pages are a vendor's who offers a pause that keeps the app working
    (tests/integration/test_pause_policy.py covers each policy and the default, which offers
    none)."""
    return {"pause_policy": "keep"}


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


SUBSCRIPTION_ID = "100000000000000888"
TODAY = date(2026, 6, 10)  # the page world's day

# The decision, written out: status (and whether its term still runs) -> allowed actions.
EXPECTED: dict[str, set[str]] = {
    "live": {"change", "cancel", "pause"},
    "trial": {"change", "cancel"},
    "future": {"cancel"},
    "dunning": {"change", "cancel"},
    "unpaid": {"change", "cancel"},
    "non_renewing": {"change", "reactivate"},
    "cancelled": {"subscribe", "reactivate"},
    "cancelled/term_over": {"subscribe"},
    "cancelled_from_dunning": {"subscribe"},
    "expired": {"subscribe"},
    "trial_expired": {"subscribe"},
    "creation_failed": {"subscribe"},
    "paused": {"resume"},
    "deleted": {"subscribe"},
    "none": {"subscribe"},
}

POSTS: dict[str, dict[str, str]] = {
    "subscribe": {"planid": STANDARD, "frequency": "monthly", "users": "2", "storage": "0"},
    "change": {"planid": STANDARD, "frequency": "monthly", "users": "2", "storage": "0"},
    "cancel": {"when": "now", "confirm": "yes"},
    "pause": {"resume_on": "2026-06-20"},
    "reactivate": {},
    "resume": {},
}
FORMS = ("subscribe", "change", "cancel", "pause")
BUTTONS = {
    "subscribe": 'href="/manage/subscribe"',
    "change": 'href="/manage/change"',
    "cancel": 'href="/manage/cancel"',
    "pause": 'href="/manage/pause"',
    "reactivate": 'action="/manage/reactivate"',
    "resume": 'action="/manage/resume"',
}


async def put_in_state(world: PageWorld, browser: Browser, case: str) -> None:
    """Billing tells the broker (by webhook) that the org's subscription is in this state."""
    if case == "none":
        return
    status, _, term = case.partition("/")
    event_type = "subscription_deleted" if status == "deleted" else "subscription_created"
    payload = subscription_event(
        event_type,
        subscription_id=SUBSCRIPTION_ID,
        status="live" if status == "deleted" else status,
        plan_code=STANDARD_CODE,
        zuid=OWNER_ZUID,
        zgid=OWNER_ZGID,
        current_term_starts_at="2026-05-01" if term else "2026-06-01",
        current_term_ends_at="2026-05-31" if term else "2026-06-30",
    )
    response = await browser.client.post(
        "/webhooks/billing",
        data=body_of(payload),
        headers={"zapikey": ZAPIKEY, "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()


def buttons(text: str) -> set[str]:
    return {action for action, marker in BUTTONS.items() if marker in text}


@pytest.mark.parametrize("case", list(EXPECTED))
async def test_overview_shows_exactly_the_buttons_the_status_allows(
    world: PageWorld, owner: Browser, case: str
):
    await put_in_state(world, owner, case)
    page = await owner.get("/manage")
    assert page.status == 200, page.text
    assert buttons(page.text) == EXPECTED[case]


@pytest.mark.parametrize("case", list(EXPECTED))
async def test_every_action_the_status_does_not_allow_is_refused_with_409_and_audited(
    world: PageWorld, owner: Browser, case: str
):
    await put_in_state(world, owner, case)
    for action in FORMS:
        shown = await owner.get(f"/manage/{action}")
        if action in EXPECTED[case]:
            assert shown.status == 200, (action, shown.text)
        else:
            assert shown.status == 409, (action, shown.text)
    refused = set(POSTS) - EXPECTED[case]
    for action in POSTS:
        before = len(world.sim.hosted_pages), len(world.calls())
        page = await owner.submit(f"/manage/{action}", POSTS[action])
        if action in refused:
            assert page.status == 409, (action, page.text)
            assert "cannot be" in page.text or "already has a running" in page.text
            assert 'href="/manage"' in page.text  # a way back to what can be done
            assert (len(world.sim.hosted_pages), len(world.calls())) == before
        else:
            assert page.status != 409, (action, page.text)
    rows = await world.audit()
    refusals = {r["action"] for r in rows if r["result"] == "refused: action_not_allowed"}
    assert refusals == refused | {f"{a}" for a in FORMS if a in refused}
    for row in rows:
        if row["result"] == "refused: action_not_allowed":
            assert (row["zuid"], row["zgid"]) == (OWNER_ZUID, OWNER_ZGID)


async def test_cancelling_a_paused_subscription_is_refused_and_billing_keeps_it_paused(
    world: PageWorld, owner: Browser, live: str
):
    paused = await owner.submit("/manage/pause", {"resume_on": "2026-06-20"})
    assert paused.status == 303
    page = await owner.submit("/manage/cancel", {"when": "now", "confirm": "yes"})
    assert page.status == 409, page.text
    assert "a paused subscription cannot be cancelled" in page.text
    assert "resume it first" in page.text
    assert world.sim.subscriptions[live].status == "paused"
    [audit] = await world.audit("cancel")
    assert (audit["subscription_id"], audit["result"]) == (live, "refused: action_not_allowed")
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]


# --- the rule itself, without I/O ---------------------------------------------------------------


def facts(status: str, term_ends_at: str | None = "2026-06-30") -> SubscriptionFacts:
    return SubscriptionFacts.of(status, term_ends_at, TODAY)


@pytest.mark.parametrize("case", [c for c in EXPECTED if c != "none"])
def test_rule_matches_the_table(case: str):
    status, _, term = case.partition("/")
    decided = allowed_actions(facts(status, "2026-05-31" if term else "2026-06-30"))
    assert {str(a) for a in decided} == EXPECTED[case]


def test_every_status_is_decided():
    assert {s.value for s in BillingStatus} == {c.split("/")[0] for c in EXPECTED} - {"none"}


def test_no_subscription_allows_only_subscribe():
    assert allowed_actions(None) == {Action.SUBSCRIBE}


def test_a_status_nobody_knows_allows_nothing():
    assert allowed_actions(facts("on_hold")) == frozenset()


def test_term_end_unknown_leaves_reactivation_to_billing():
    assert Action.REACTIVATE in allowed_actions(facts("cancelled", None))
    assert Action.REACTIVATE in allowed_actions(facts("cancelled", "not a date"))
    assert Action.REACTIVATE in allowed_actions(facts("cancelled", "2026-06-10"))  # last day


def test_without_rights_only_subscribe_remains():
    assert permitted(facts("live"), can_manage=False) == frozenset()
    assert permitted(facts("expired"), can_manage=False) == {Action.SUBSCRIBE}
    assert permitted(facts("live"), can_manage=True) == {
        Action.CHANGE,
        Action.CANCEL,
        Action.PAUSE,
    }
