"""The Manage Subscription page's actions, end to end: the real broker, the simulated Zoho Billing
(its API, hosted checkout pages and webhooks) and the simulated Developer Console.

Each action is driven as a browser would: through the page's forms with its session cookie, then
through billing's checkout and back. Every test checks what the person sees, what billing and the
Developer Console got, and what the broker recorded (checkouts, audit log, deliveries).
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.support.basics import APP_DOMAIN, STORAGE_MONTHLY, STORAGE_YEARLY
from tests.support.pages import (
    OWNER_ZGID,
    OWNER_ZUID,
    PROFESSIONAL,
    STANDARD,
    STANDARD_CODE,
    TODAY,
    Browser,
    Page,
    PageWorld,
    WorldFactory,
)
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


# --- reading pages ------------------------------------------------------------------------------


def input_value(text: str, name: str) -> str | None:
    found = re.search(rf'<input[^>]*\bname="{name}"[^>]*\bvalue="([^"]*)"', text)
    return found.group(1) if found else None


def checked(text: str, name: str) -> str | None:
    found = re.search(rf'<input type="radio" name="{name}" value="([^"]*)"\s+checked', text)
    return found.group(1) if found else None


def status_shown(text: str) -> str:
    found = re.search(r'<span class="status status-([a-z_]+)">', text)
    assert found, text
    return found.group(1)


def assert_outcome_page(page: Page, status: int, title: str) -> None:
    assert page.status == status, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert f"<h1>{title}</h1>" in page.text
    assert 'href="/manage"' in page.text  # always a way back


async def overview(browser: Browser) -> Page:
    page = await browser.get("/manage")
    assert page.status == 200, page.text
    return page


# --- entering the page -------------------------------------------------------------------------


async def test_entering_with_parameters_redirects_to_a_clean_address_with_a_session_cookie(
    world: PageWorld,
):
    browser = await world.browser()
    entered = await browser.enter()
    assert entered.status == 303
    assert entered.location == "/manage"
    for value in (OWNER_ZUID, OWNER_ZGID, "zuid", "zgid", "@"):
        assert value not in entered.location
    cookies = SimpleCookie()
    for header in entered.headers.getall("Set-Cookie"):
        cookies.load(header)
    morsel = cookies["broker_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/manage"
    assert not morsel["secure"]  # plain http, no TLS proxy
    page = await overview(browser)
    assert "Ada Owner · Example Org" in page.text
    assert "no subscription yet" in page.text


async def test_overview_without_a_session_is_a_401_page_saying_how_to_get_in(world: PageWorld):
    browser = await world.browser()
    page = await browser.get("/manage")
    assert page.status == 401
    assert page.headers["Content-Type"].startswith("text/html")
    assert "open the subscription page again from the app" in page.text
    assert "Subscription menu" in page.text


async def test_action_pages_without_a_session_are_401(world: PageWorld):
    browser = await world.browser()
    for path in ("/manage/subscribe", "/manage/change", "/manage/cancel", "/manage/pause"):
        assert (await browser.get(path)).status == 401, path
        assert (await browser.post(path, data={"csrf_token": "x"})).status == 401, path
    assert (await browser.get("/manage/return", params={"hostedpage_id": "1"})).status == 401
    assert world.sim.hosted_pages == {}
    assert await world.audit() == []


# --- subscribing -------------------------------------------------------------------------------


async def test_subscribe_redirects_to_the_hosted_checkout_and_records_checkout_and_audit(
    world: PageWorld, owner: Browser
):
    opened = await world.open_checkout(owner, planid=STANDARD, users=5, storage=2)
    assert opened.location.startswith(f"{world.billing_origin}/hostedpages/")
    hostedpage_id = opened.hostedpage_id
    # What billing was asked for: the choices, and cf_zuid / cf_zgid from the session.
    order = world.sim.hosted_pages[hostedpage_id].order
    assert (order.plan.plan_code, order.quantity) == (STANDARD_CODE, 5)
    assert [(a.addon.addon_code, a.quantity) for a in order.addons] == [(STORAGE_MONTHLY, 2)]
    assert order.new_customer is not None
    fields = {f.api_name: f.value for f in order.custom_fields}
    assert fields == {"cf_zuid": OWNER_ZUID, "cf_zgid": OWNER_ZGID}
    redirect = world.sim.hosted_pages[hostedpage_id].redirect_url
    assert redirect == f"http://127.0.0.1:{world.broker.port}/manage/return"
    checkouts = await world.rows("SELECT * FROM checkouts")
    assert len(checkouts) == 1
    row = checkouts[0]
    assert (row["hostedpage_id"], row["zgid"], row["zuid"], row["action"]) == (
        hostedpage_id,
        OWNER_ZGID,
        OWNER_ZUID,
        "subscribe",
    )
    assert json.loads(row["form_json"]) == {
        "planid": STANDARD,
        "frequency": "monthly",
        "users": "5",
        "storage": "2",
    }
    [audit] = await world.audit()
    assert (audit["zuid"], audit["zgid"], audit["action"], audit["result"]) == (
        OWNER_ZUID,
        OWNER_ZGID,
        "subscribe",
        "sent to checkout",
    )
    assert json.loads(audit["detail"])["hostedpage_id"] == hostedpage_id
    assert world.calls() == []  # nothing reaches the platform before payment


@pytest.mark.parametrize(
    ("frequency", "users", "storage", "platform_frequency", "addon"),
    [("monthly", 5, 2, "1", STORAGE_MONTHLY), ("yearly", 3, 1, "4", STORAGE_YEARLY)],
)
async def test_paid_checkout_shows_the_subscription_live_and_adds_it_to_the_platform_once(
    world: PageWorld,
    owner: Browser,
    frequency: str,
    users: int,
    storage: int,
    platform_frequency: str,
    addon: str,
):
    """The return reads the hosted page and feeds the pipeline; the webhook then changes
    nothing."""
    world.sim.hold_webhooks()  # the return must do the work, not the webhook
    opened = await world.open_checkout(
        owner, planid=STANDARD, users=users, storage=storage, frequency=frequency
    )
    back = await world.come_back(owner, await world.pay(opened.hostedpage_id))
    assert back.status == 303
    assert back.location == "/manage"
    await world.platform.wait_until(lambda p: len(p.applied) == 1)
    await world.deliveries_finished()  # "Up to date" below needs the Add's answer recorded
    [add] = world.calls()
    [subscription] = world.sim.subscriptions.values()
    assert [a.addon.addon_code for a in subscription.addons] == [addon]
    assert (add.method, add.zgid, add.planid) == ("POST", OWNER_ZGID, STANDARD)
    assert add.body == {
        "zuid": OWNER_ZUID,
        "no_of_users": str(users),
        "frequency": platform_frequency,
        "subscription_id": subscription.subscription_id,
        "storage_units": str(storage),
    }
    page = await overview(owner)
    assert status_shown(page.text) == "live"
    assert "Thank you: your subscription is active." in page.text
    assert f"<dd>{users}</dd>" in page.text
    assert "Up to date" in page.text
    again = await overview(owner)
    assert "Thank you" not in again.text  # the notice is shown once

    world.sim.release_webhooks()
    await world.settle()
    events = await world.rows(
        "SELECT outcome FROM webhook_events WHERE event_type = 'subscription_created'"
    )
    assert events == [{"outcome": "unchanged"}]
    assert len(await world.rows("SELECT * FROM deliveries")) == 1
    assert world.calls() == [add]
    checkout = (await world.rows("SELECT status FROM checkouts"))[0]
    assert checkout["status"] == "success"
    results = [(r["action"], r["result"]) for r in await world.audit()]
    assert results == [("subscribe", "sent to checkout"), ("checkout_subscribe", "ok")]


async def test_paid_checkout_answered_inside_a_wrapper_still_completes_the_return(
    make_world: WorldFactory,
):
    """Zoho documents ``GET /hostedpages/{id}`` flat (the test above); a ``hostedpage``
    wrapper, as its create calls answer, is read too."""
    world = await make_world(billing_simulator={"hosted_page_wrapped": True})
    owner = await world.signed_in()
    world.sim.hold_webhooks()
    opened = await world.open_checkout(owner, planid=STANDARD, users=2, storage=1)
    back = await world.come_back(owner, await world.pay(opened.hostedpage_id))
    assert (back.status, back.location) == (303, "/manage")
    await world.platform.wait_until(lambda p: len(p.applied) == 1)
    assert [c.method for c in world.calls()] == ["POST"]
    checkout = (await world.rows("SELECT status FROM checkouts"))[0]
    assert checkout["status"] == "success"


async def test_returning_twice_from_a_paid_checkout_changes_nothing_more(
    world: PageWorld, owner: Browser
):
    opened = await world.open_checkout(owner)
    location = await world.pay(opened.hostedpage_id)
    assert (await world.come_back(owner, location)).status == 303
    await world.settle()
    again = await world.come_back(owner, location)  # reload, or the back button
    assert again.status == 303
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]
    assert len(await world.rows("SELECT * FROM deliveries")) == 1


async def test_failed_payment_shows_402_and_try_again_reopens_the_form_with_the_same_choices(
    world: PageWorld, owner: Browser
):
    opened = await world.open_checkout(
        owner, planid=PROFESSIONAL, users=7, storage=3, frequency="yearly"
    )
    page = await world.come_back(owner, await world.pay(opened.hostedpage_id, outcome="fail"))
    assert_outcome_page(page, 402, "The payment did not go through")
    assert "you were not charged" in page.text
    retry = f"/manage/subscribe?resume={opened.hostedpage_id}"
    assert f'href="{retry}">Try again</a>' in page.text
    form = await owner.get(retry)
    assert form.status == 200, form.text
    assert checked(form.text, "planid") == PROFESSIONAL
    assert checked(form.text, "frequency") == "yearly"
    assert input_value(form.text, "users") == "7"
    assert input_value(form.text, "storage") == "3"
    assert world.sim.subscriptions == {}
    assert world.calls() == []
    checkout = (await world.rows("SELECT status FROM checkouts"))[0]
    assert checkout["status"] == "failure"
    [audit] = await world.audit("checkout_subscribe")
    assert audit["result"] == "checkout failure"


async def test_expired_checkout_shows_410_with_a_way_to_start_again(
    world: PageWorld, owner: Browser
):
    opened = await world.open_checkout(owner, users=4)
    world.sim.expire_hosted_pages()
    page = await owner.get(f"/manage/return?hostedpage_id={opened.hostedpage_id}")
    assert_outcome_page(page, 410, "The checkout page expired")
    assert "start the checkout again" in page.text
    assert f"/manage/subscribe?resume={opened.hostedpage_id}" in page.text
    form = await owner.get(f"/manage/subscribe?resume={opened.hostedpage_id}")
    assert input_value(form.text, "users") == "4"
    [audit] = await world.audit("checkout_subscribe")
    assert audit["result"] == "checkout expired"
    assert world.calls() == []


async def test_cancelled_checkout_shows_409_with_a_way_to_start_again(
    world: PageWorld, owner: Browser
):
    opened = await world.open_checkout(owner, users=6)
    back = await world.come_back(owner, await world.pay(opened.hostedpage_id, outcome="cancel"))
    assert_outcome_page(back, 409, "The checkout was cancelled")
    assert "you were not charged" in back.text
    assert f"/manage/subscribe?resume={opened.hostedpage_id}" in back.text
    checkout = (await world.rows("SELECT status FROM checkouts"))[0]
    assert checkout["status"] == "cancelled"
    [audit] = await world.audit("checkout_subscribe")
    assert audit["result"] == "checkout cancelled"
    assert world.sim.subscriptions == {}
    assert world.calls() == []


async def test_unfinished_checkout_offers_to_continue_it(world: PageWorld, owner: Browser):
    opened = await world.open_checkout(owner)
    page = await owner.get(f"/manage/return?hostedpage_id={opened.hostedpage_id}")
    assert_outcome_page(page, 409, "The checkout was not finished")
    assert f'href="{opened.location}">Continue the checkout</a>' in page.text


async def test_return_with_an_unknown_checkout_is_404(world: PageWorld, owner: Browser):
    page = await owner.get("/manage/return?hostedpage_id=2077000000499999")
    assert page.status == 404
    assert "start again" in page.text
    assert (await owner.get("/manage/return")).status == 404
    assert await world.audit() == []


async def test_billing_down_on_return_loses_nothing_and_checking_again_completes_it(
    world: PageWorld, owner: Browser
):
    world.sim.hold_webhooks()  # only the return can tell the broker about the payment
    opened = await world.open_checkout(owner)
    location = await world.pay(opened.hostedpage_id)
    world.sim.go_down()
    page = await world.come_back(owner, location)
    assert_outcome_page(page, 503, "We could not check the payment")
    assert "Nothing is lost" in page.text
    assert f"/manage/return?hostedpage_id={opened.hostedpage_id}" in page.text
    world.sim.come_up()
    again = await owner.get(f"/manage/return?hostedpage_id={opened.hostedpage_id}")
    assert again.status == 303
    await world.platform.wait_until(lambda p: len(p.applied) == 1)
    assert world.calls()[0].method == "POST"
    world.sim.release_webhooks()
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]


# --- changing ----------------------------------------------------------------------------------


async def test_change_to_a_dearer_plan_goes_through_the_hosted_update_checkout(
    world: PageWorld, owner: Browser, live: str
):
    form = await owner.get("/manage/change")
    assert checked(form.text, "planid") == STANDARD  # the current choices, ready to edit
    assert input_value(form.text, "users") == "5"
    opened = await world.open_checkout(owner, planid=PROFESSIONAL, users=5, action="change")
    hosted = world.sim.hosted_pages[opened.hostedpage_id]
    assert hosted.action == "update_subscription"
    assert hosted.order.subscription_id == live
    assert hosted.order.plan.plan_code == f"{APP_DOMAIN}_{PROFESSIONAL}"
    [row] = await world.rows("SELECT * FROM checkouts WHERE action = 'change'")
    assert row["subscription_id"] == live
    back = await world.come_back(owner, await world.pay(opened.hostedpage_id))
    assert back.status == 303
    await world.platform.wait_until(lambda p: len(p.applied) == 2)
    modify = world.calls()[-1]
    assert (modify.method, modify.zgid, modify.planid) == ("PUT", OWNER_ZGID, PROFESSIONAL)
    assert modify.body is not None
    assert (modify.body["no_of_users"], modify.body["subscription_id"]) == ("5", live)
    page = await overview(owner)
    assert "Your subscription was changed." in page.text
    assert re.search(r'<h2 id="plan-heading">\s*Professional\s*</h2>', page.text), page.text
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "PUT"]
    assert [(a["action"], a["result"]) for a in await world.audit()][2:] == [
        ("change", "sent to checkout"),
        ("checkout_change", "ok"),
    ]


async def test_change_to_fewer_users_applies_directly_and_modifies_the_platform_once(
    world: PageWorld, owner: Browser, live: str
):
    await owner.get("/manage/change")
    page = await owner.submit(
        "/manage/change",
        {
            "planid": STANDARD,
            "frequency": "monthly",
            "users": "3",
            "storage": "0",
            "confirm": "yes",
        },
    )
    assert page.status == 303
    assert page.location == "/manage"  # no checkout: nothing more to pay
    assert world.sim.subscriptions[live].quantity == 3
    await world.platform.wait_until(lambda p: len(p.applied) == 2)
    modify = world.calls()[-1]
    assert (modify.method, modify.zgid, modify.planid) == ("PUT", OWNER_ZGID, STANDARD)
    assert modify.body == {
        "zuid": OWNER_ZUID,
        "no_of_users": "3",
        "frequency": "1",
        "subscription_id": live,
        "storage_units": "0",
    }
    shown = await overview(owner)
    assert "Your subscription was changed." in shown.text
    assert "<dd>3</dd>" in shown.text
    await world.settle()  # the subscription_downgraded webhook arrives and changes nothing
    assert [c.method for c in world.calls()] == ["POST", "PUT"]
    assert await world.rows("SELECT * FROM checkouts WHERE action = 'change'") == []
    [audit] = await world.audit("change")
    assert audit["result"] == "ok"
    assert json.loads(audit["detail"])["users"] == 3


# --- cancelling and reactivating ---------------------------------------------------------------


async def cancel(owner: Browser, when: str) -> Page:
    form = await owner.get("/manage/cancel")
    assert form.status == 200, form.text
    assert 'action="/manage/cancel"' in form.text
    return await owner.submit("/manage/cancel", {"when": when, "confirm": "yes"})


async def test_cancel_at_term_end_shows_non_renewing_and_leaves_the_platform_alone(
    world: PageWorld, owner: Browser, live: str
):
    page = await cancel(owner, "term_end")
    assert page.status == 303
    assert world.sim.subscriptions[live].status == "non_renewing"
    shown = await overview(owner)
    assert status_shown(shown.text) == "non_renewing"
    assert "will end on 2026-07-09" in shown.text
    assert 'action="/manage/reactivate"' in shown.text
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]
    [audit] = await world.audit("cancel_term_end")
    assert (audit["subscription_id"], audit["result"]) == (live, "ok")


async def test_cancel_now_cancels_on_the_platform(world: PageWorld, owner: Browser, live: str):
    page = await cancel(owner, "now")
    assert page.status == 303
    assert world.sim.subscriptions[live].status == "cancelled"
    await world.platform.wait_until(lambda p: len(p.applied) == 2)
    delete = world.calls()[-1]
    assert (delete.method, delete.zgid, delete.planid) == ("DELETE", OWNER_ZGID, STANDARD)
    assert delete.body is not None
    assert (delete.body["zuid"], delete.body["subscription_id"]) == (OWNER_ZUID, live)
    shown = await overview(owner)
    assert status_shown(shown.text) == "cancelled"
    assert "Your subscription was cancelled." in shown.text
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "DELETE"]


async def test_cancel_without_confirming_is_422_and_changes_nothing(
    world: PageWorld, owner: Browser, live: str
):
    page = await owner.submit("/manage/cancel", {"when": "now"})
    assert page.status == 422
    assert "Tick the box to confirm" in page.text
    assert world.sim.subscriptions[live].status == "live"
    assert await world.audit("cancel_now") == []


async def test_reactivate_after_cancel_now_adds_the_subscription_again(
    world: PageWorld, owner: Browser, live: str
):
    await cancel(owner, "now")
    await world.platform.wait_until(lambda p: len(p.applied) == 2)
    page = await owner.submit("/manage/reactivate")
    assert page.status == 303
    assert world.sim.subscriptions[live].status == "live"
    await world.platform.wait_until(lambda p: len(p.applied) == 3)
    add = world.calls()[-1]
    assert (add.method, add.zgid) == ("POST", OWNER_ZGID)
    assert add.body is not None
    assert (add.body["subscription_id"], add.body["no_of_users"]) == (live, "5")
    shown = await overview(owner)
    assert "Your subscription is active again." in shown.text
    assert status_shown(shown.text) == "live"
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "DELETE", "POST"]


async def test_reactivate_after_term_end_cancel_makes_no_platform_call(
    world: PageWorld, owner: Browser, live: str
):
    await cancel(owner, "term_end")
    page = await owner.submit("/manage/reactivate")
    assert page.status == 303
    assert world.sim.subscriptions[live].status == "live"
    assert status_shown((await overview(owner)).text) == "live"
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]
    [audit] = await world.audit("reactivate")
    assert audit["result"] == "ok"


async def test_reactivating_a_live_subscription_is_refused(
    world: PageWorld, owner: Browser, live: str
):
    page = await owner.submit("/manage/reactivate")
    assert page.status == 409
    assert "a live subscription cannot be reactivated" in page.text
    [audit] = await world.audit("reactivate")
    assert audit["result"] == "refused: action_not_allowed"
    assert world.sim.subscriptions[live].status == "live"


# --- pausing and resuming ----------------------------------------------------------------------


async def test_pause_preview_shows_the_credit_for_the_unused_paid_days(
    world: PageWorld, owner: Browser, live: str
):
    """docs/contracts.md §5: the day rate (price / days in the billing period) in cents, times
    the paused days, as Zoho's example does ($3500 / 365 -> $9.58 x 60 = $574.80). Worked out
    by hand: Standard, 5 users at 10.00 = 50.00 USD a month; the term runs June 10 - July 9
    (30 days); paused June 10, resumed June 20: 10 paid days; 50.00 / 30 = 1.666... -> 1.66 USD
    a day, x 10 = 16.60 USD: the figures shown multiply to the credit shown."""
    page = await owner.get("/manage/pause", params={"resume_on": "2026-06-20"})
    assert page.status == 200, page.text
    assert '<strong id="credit-amount">16.60 USD</strong>' in page.text
    text = " ".join(re.sub(r"<[^>]+>", " ", page.text).split())
    assert (
        "for 10 paid days at 1.66 USD a day (50.00 USD over the 30 days of this billing period"
        in text
    ), text
    assert 'action="/manage/pause"' in page.text
    assert world.sim.subscriptions[live].status == "live"  # a preview changes nothing


async def test_previewed_pause_credit_is_what_billing_credits_when_the_pause_ends(
    world: PageWorld, owner: Browser, live: str
):
    preview = await owner.get("/manage/pause", params={"resume_on": "2026-06-20"})
    shown = re.search(r'<strong id="credit-amount">([0-9.]+) USD</strong>', preview.text)
    assert shown, preview.text
    paused = await owner.submit("/manage/pause", {"resume_on": "2026-06-20"})
    assert paused.status == 303
    world.sim.set_today(date(2026, 6, 20))  # billing resumes it on the chosen day
    subscription = world.sim.subscriptions[live]
    assert subscription.status == "live"
    # The simulator computes its credit on its own; both are the worked example's 16.60.
    assert Decimal(shown.group(1)) == subscription.last_pause_credit == Decimal("16.60")
    await world.settle()
    assert status_shown((await overview(owner)).text) == "live"
    assert [c.method for c in world.calls()] == ["POST"]


async def test_pause_then_resume_moves_the_status_without_platform_calls(
    world: PageWorld, owner: Browser, live: str
):
    """With plans.pause_policy = keep the app keeps working through a pause."""
    page = await owner.submit("/manage/pause", {"resume_on": "2026-06-20"})
    assert page.status == 303
    paused = world.sim.subscriptions[live]
    assert (paused.status, paused.paused_at, paused.resume_date) == (
        "paused",
        TODAY,
        date(2026, 6, 20),
    )
    shown = await overview(owner)
    assert status_shown(shown.text) == "paused"
    assert "paused until 2026-06-20" in shown.text
    assert 'action="/manage/resume"' in shown.text
    resumed = await owner.submit("/manage/resume")
    assert resumed.status == 303
    assert world.sim.subscriptions[live].status == "live"
    shown = await overview(owner)
    assert status_shown(shown.text) == "live"
    assert "Your subscription is running again." in shown.text
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]
    assert [(a["action"], a["result"]) for a in await world.audit()][-2:] == [
        ("pause", "ok"),
        ("resume", "ok"),
    ]


# --- validation --------------------------------------------------------------------------------

PLAN_FORM_ERRORS = {
    "no_users": ({"users": "0"}, "users", "Enter a whole number of users"),
    "words_for_users": ({"users": "five"}, "users", "Enter a whole number of users"),
    # str.isdigit accepts these; int() refuses "²" and reads "١٢" as 12.
    "superscript_users": ({"users": "²"}, "users", "Enter a whole number of users"),
    "arabic_indic_storage": ({"storage": "١٢"}, "storage", "Enter a whole number of storage units"),
    "unknown_plan": ({"planid": "9999"}, "planid", "Choose one of the plans listed."),
    "negative_storage": ({"storage": "-1"}, "storage", "Enter a whole number of storage units"),
    "unknown_frequency": ({"frequency": "weekly"}, "frequency", "Choose monthly or yearly"),
}


@pytest.mark.parametrize("case", list(PLAN_FORM_ERRORS))
async def test_invalid_plan_choice_is_422_with_the_message_beside_the_field_and_values_kept(
    world: PageWorld, owner: Browser, case: str
):
    changes, field, message = PLAN_FORM_ERRORS[case]
    typed = {"planid": STANDARD, "frequency": "monthly", "users": "6", "storage": "2", **changes}
    await owner.get("/manage/subscribe")
    page = await owner.submit("/manage/subscribe", typed)
    assert page.status == 422
    error = re.search(rf'<(?:p|span) class="error" id="{field}-error">([^<]*)<', page.text)
    assert error, page.text
    assert message in error.group(1)
    for name in ("users", "storage"):
        assert input_value(page.text, name) == typed[name]
    if typed["planid"] == STANDARD:
        assert checked(page.text, "planid") == STANDARD
    assert world.sim.hosted_pages == {}
    assert await world.rows("SELECT * FROM checkouts") == []


@pytest.mark.parametrize("resume_on", ["2026-13-01", "20-06-2026", "2026-06-10", "2027-12-31"])
async def test_bad_resume_date_is_422_with_the_message_and_the_typed_date_kept(
    world: PageWorld, owner: Browser, live: str, resume_on: str
):
    preview = await owner.get("/manage/pause", params={"resume_on": resume_on})
    posted = await owner.submit("/manage/pause", {"resume_on": resume_on})
    for page in (preview, posted):
        assert page.status == 422
        assert 'id="resume-error"' in page.text
        assert 'aria-invalid="true"' in page.text
        assert input_value(page.text, "resume_on") == resume_on
        assert "credit-amount" not in page.text
    assert world.sim.subscriptions[live].status == "live"
    assert await world.audit("pause") == []


# --- when billing fails ------------------------------------------------------------------------


async def assert_form_kept_after_failure(
    world: PageWorld, owner: Browser, page: Page, message: str, audit_result: str
) -> None:
    assert page.status == 503
    assert re.search(r'<p class="warning" role="alert">[^<]*' + message, page.text), page.text
    assert "your choices are kept" in page.text
    assert checked(page.text, "planid") == PROFESSIONAL
    assert checked(page.text, "frequency") == "yearly"
    assert input_value(page.text, "users") == "8"
    assert input_value(page.text, "storage") == "1"
    assert world.sim.hosted_pages == {}
    assert await world.rows("SELECT * FROM checkouts") == []
    assert await world.rows("SELECT * FROM subscriptions") == []
    [audit] = await world.audit()
    assert (audit["zuid"], audit["zgid"], audit["action"], audit["result"]) == (
        OWNER_ZUID,
        OWNER_ZGID,
        "subscribe",
        audit_result,
    )
    assert json.loads(audit["detail"])["users"] == 8


CHOICES = {"planid": PROFESSIONAL, "frequency": "yearly", "users": "8", "storage": "1"}


async def test_billing_down_during_subscribe_shows_the_form_again_with_the_choices(
    world: PageWorld, owner: Browser
):
    await owner.get("/manage/subscribe")
    world.sim.go_down()
    page = await owner.submit("/manage/subscribe", CHOICES)
    await assert_form_kept_after_failure(
        world, owner, page, "lost the connection to Zoho Billing", "failed: billing_unavailable"
    )
    world.sim.come_up()
    again = await owner.submit("/manage/subscribe", CHOICES)
    assert again.status == 303  # the same choices go through once billing is back


async def test_billing_rate_limiting_during_subscribe_shows_the_form_again_with_the_choices(
    world: PageWorld, owner: Browser
):
    await owner.get("/manage/subscribe")
    world.sim.fail_next(2, 429)  # billing.max_attempts = 2: every try is refused
    page = await owner.submit("/manage/subscribe", CHOICES)
    await assert_form_kept_after_failure(
        world, owner, page, "Billing is busy right now", "failed: billing_rate_limited"
    )


async def test_billing_down_before_the_catalog_is_read_still_keeps_the_choices_and_audits(
    make_world: WorldFactory,
):
    world = await make_world(landing={"catalog_ttl_seconds": 0})
    owner = await world.signed_in()
    world.sim.go_down()
    page = await owner.submit("/manage/subscribe", CHOICES)
    assert page.status == 503
    assert input_value(page.text, "users") == "8"
    assert "could not be asked which subscriptions" in page.text
    [audit] = await world.audit()
    # Billing cannot say what the org already has: no checkout starts (fail closed).
    assert (audit["action"], audit["result"]) == ("subscribe", "refused: billing_not_asked")
    assert not world.sim.calls("POST", "/hostedpages")


async def test_billing_down_during_cancel_shows_what_happened_and_changes_nothing(
    world: PageWorld, owner: Browser, live: str
):
    world.sim.go_down()
    page = await owner.submit("/manage/cancel", {"when": "now", "confirm": "yes"})
    assert_outcome_page(page, 503, "Billing did not make the change")
    assert "Nothing was changed" in page.text
    world.sim.come_up()
    assert world.sim.subscriptions[live].status == "live"
    [audit] = await world.audit("cancel_now")
    assert audit["result"] == "failed: billing_unavailable"
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]


async def test_billing_refusing_a_change_shows_its_reason_on_the_form_with_the_values_kept(
    world: PageWorld, owner: Browser, live: str
):
    world.sim.fail_next(1, 400)  # billing says no to the PUT, for its own reasons
    page = await owner.submit(
        "/manage/change",
        {"planid": STANDARD, "frequency": "monthly", "users": "2", "confirm": "yes"},
    )
    assert page.status == 400
    assert "Billing refused the change: Simulated Zoho Billing failure" in page.text
    assert input_value(page.text, "users") == "2"
    assert world.sim.subscriptions[live].quantity == 5
    [audit] = await world.audit("change")
    assert audit["result"] == "failed: billing_rejected"


async def test_overview_with_billing_down_still_shows_the_subscription_with_a_warning(
    world: PageWorld, owner: Browser, live: str
):
    world.sim.go_down()
    page = await overview(owner)
    assert status_shown(page.text) == "live"
    assert "Billing cannot be reached right now" in page.text


# --- the audit log -----------------------------------------------------------------------------


async def test_every_action_is_audited_with_who_what_when_and_result(
    world: PageWorld, owner: Browser, live: str
):
    started = world.clock()
    steps: list[tuple[str, dict[str, str]]] = [
        (
            "/manage/change",
            {"planid": STANDARD, "frequency": "monthly", "users": "4", "confirm": "yes"},
        ),
        ("/manage/pause", {"resume_on": "2026-06-20"}),
        ("/manage/resume", {}),
        ("/manage/cancel", {"when": "term_end", "confirm": "yes"}),
        ("/manage/reactivate", {}),
        ("/manage/cancel", {"when": "now", "confirm": "yes"}),
        ("/manage/reactivate", {}),
    ]
    for path, fields in steps:
        page = await owner.submit(path, fields)
        assert (page.status, page.location) == (303, "/manage"), page.text
        await world.settle()  # each platform call goes out before the next action
    rows = await world.audit()
    assert [(r["action"], r["result"]) for r in rows] == [
        ("subscribe", "sent to checkout"),
        ("checkout_subscribe", "ok"),
        ("change", "ok"),
        ("pause", "ok"),
        ("resume", "ok"),
        ("cancel_term_end", "ok"),
        ("reactivate", "ok"),
        ("cancel_now", "ok"),
        ("reactivate", "ok"),
    ]
    for row in rows:
        assert (row["zuid"], row["zgid"]) == (OWNER_ZUID, OWNER_ZGID)
        assert row["request_id"]
    times = [row["at"] for row in rows]
    assert times == sorted(times)
    assert times[2] >= started
    assert {row["subscription_id"] for row in rows[2:]} == {live}
    assert [c.method for c in world.calls()] == ["POST", "PUT", "DELETE", "POST"]
