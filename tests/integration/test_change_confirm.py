"""Every change that skips checkout, and every cancellation, is confirmed on a page that shows
what changes, when, and what happens to money, before any of it moves.

The billing simulator's catalog: Standard 10.00 a user a month or 100.00 a year (USD). A
subscription bought through the page on 2026-06-10 has the term 2026-06-10..2026-07-09 (30 days)
monthly or 2026-06-10..2027-06-09 (365 days) yearly. Expected amounts are worked by hand from
Zoho's documented proration rule (tests/unit/test_change_money.py cites it: price x days left / days
in the term, rounded once to the cent; the net is the difference of the rounded lines), with the
arithmetic beside each; Zoho gives no example with these prices.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.support.pages import STANDARD, Browser, PageWorld, WorldFactory

DAY = 86_400.0


async def moved_to(world: PageWorld, owner: Browser, day: date) -> None:
    """Billing's calendar and the broker's clock both reach ``day``; the owner opens a fresh
    link (the old page session has expired by then)."""
    world.sim.set_today(day)
    world.clock.advance((day - date(2026, 6, 10)).days * DAY)
    entered = await owner.enter()
    assert entered.status == 303, entered.text


def choice(users: int, frequency: str = "monthly", **extra: str) -> dict[str, Any]:
    return {
        "planid": STANDARD,
        "frequency": frequency,
        "users": str(users),
        "storage": "0",
        **extra,
    }


async def test_fewer_users_mid_month_shows_the_credit_note_and_changes_nothing_until_confirmed(
    world: PageWorld, owner: Browser
):
    live = await world.subscribed(owner, users=5)  # 50.00 a month
    await moved_to(world, owner, date(2026, 6, 20))  # June 20..July 9: 20 of 30 days left
    page = await owner.submit("/manage/change", choice(3))  # 30.00 a month
    assert page.status == 200, page.text
    assert "Confirm the change" in page.text
    # 50 x 20/30 = 33.333 -> 33.33 unused; 30 x 20/30 = 20.00; 33.33 - 20.00 = 13.33.
    assert "credit note of 13.33 USD" in page.text
    assert "33.33 USD for the 20 days of the current term" in page.text
    assert "less 20.00 USD for the new choice over the 20 days left" in page.text
    assert "Amounts are before tax" in page.text
    assert world.sim.subscriptions[live].quantity == 5  # not applied
    assert [c for c in world.sim.calls("PUT") if "/subscriptions/" in c.path] == []

    done = await owner.submit("/manage/change", choice(3, confirm="yes"))
    assert (done.status, done.location) == (303, "/manage"), done.text
    assert world.sim.subscriptions[live].quantity == 3
    overview = await owner.get("/manage")
    assert "Billing issues a credit note of 13.33 USD." in overview.text
    [audit] = await world.audit("change")
    assert '"money": "credit_note"' in audit["detail"]
    assert '"amount": "13.33"' in audit["detail"]


async def test_yearly_downgrade_mid_term_shows_the_yearly_proration(
    world: PageWorld, owner: Browser
):
    await world.subscribed(owner, users=5, frequency="yearly")  # 500.00 a year
    await moved_to(world, owner, date(2026, 12, 10))  # Dec 10..June 9: 182 of 365 days left
    page = await owner.get("/manage/change/confirm", params=choice(3, "yearly"))
    assert page.status == 200, page.text
    # 500 x 182/365 = 249.315 -> 249.32; 300 x 182/365 = 149.589 -> 149.59; 249.32 - 149.59.
    assert "credit note of 99.73 USD" in page.text
    assert "249.32 USD for the 182 days" in page.text
    assert "less 149.59 USD" in page.text
    assert "300.00 USD a year" in page.text, page.text


async def test_a_cycle_change_that_skips_checkout_shows_the_first_month_against_the_unused_year(
    world: PageWorld, owner: Browser
):
    await world.subscribed(owner, users=5, frequency="yearly")  # 500.00 a year
    await moved_to(world, owner, date(2026, 12, 10))
    page = await owner.submit("/manage/change", choice(2))  # 20.00 a month: plainly cheaper
    assert page.status == 200, page.text
    # 249.32 unused (above) - 20.00 for the first month = 229.32.
    assert "credit note of 229.32 USD" in page.text
    assert "less 20.00 USD for the new choice's first billing period" in page.text


async def test_a_change_post_without_the_session_token_is_refused_and_changes_nothing(
    world: PageWorld, owner: Browser
):
    live = await world.subscribed(owner, users=5)
    page = await owner.post("/manage/change", data=choice(3, confirm="yes"))
    assert page.status == 403, page.text
    assert world.sim.subscriptions[live].quantity == 5
    [refusal] = await world.audit("change")
    assert refusal["result"] == "refused: csrf"


async def test_the_confirmation_link_for_a_dearer_choice_goes_back_to_the_plan_form(
    world: PageWorld, owner: Browser
):
    await world.subscribed(owner, users=5)
    page = await owner.get("/manage/change/confirm", params=choice(6))  # dearer: checkout
    assert (page.status, page.location) == (303, "/manage/change")
    bad = await owner.get("/manage/change/confirm", params=choice(0))
    assert bad.status == 422, bad.text


async def test_cancel_now_on_a_prepaid_year_says_what_is_not_paid_back(
    world: PageWorld, owner: Browser
):
    await world.subscribed(owner, users=5, frequency="yearly")
    await moved_to(world, owner, date(2026, 12, 10))
    page = await owner.get("/manage/cancel")
    assert page.status == 200
    # Cancel now returns nothing by default: 500 x 182/365 = 249.32 of unused, paid days kept.
    assert "No refund and no credit" in page.text
    assert "the 182 days of this term you paid for and will not use (249.32 USD)" in page.text
    assert "Nothing more is charged, and nothing already paid is returned." in page.text


async def test_cancel_now_shows_the_refund_when_the_vendors_billing_refunds(
    make_world: WorldFactory,
):
    world = await make_world(billing_rules={"cancel_now_returns": "refund"})
    owner = await world.signed_in()
    live = await world.subscribed(owner, users=5)  # 50.00 a month
    await moved_to(world, owner, date(2026, 6, 20))
    page = await owner.get("/manage/cancel")
    # 50 x 20/30 = 33.333 -> 33.33 refunded.
    assert "Billing refunds you 33.33 USD" in page.text
    unconfirmed = await owner.submit("/manage/cancel", {"when": "now"})
    assert unconfirmed.status == 422
    assert "Billing refunds you 33.33 USD" in unconfirmed.text
    assert world.sim.subscriptions[live].status == "live"
    refused = await owner.post("/manage/cancel", data={"when": "now", "confirm": "yes"})
    assert refused.status == 403
    assert world.sim.subscriptions[live].status == "live"
    done = await owner.submit("/manage/cancel", {"when": "now", "confirm": "yes"})
    assert (done.status, done.location) == (303, "/manage"), done.text
    assert world.sim.subscriptions[live].status == "cancelled"
    assert "Billing refunds 33.33 USD." in (await owner.get("/manage")).text


async def test_prices_that_include_tax_say_so(make_world: WorldFactory):
    world = await make_world(billing_rules={"tax": "inclusive"})
    owner = await world.signed_in()
    await world.subscribed(owner, users=5)
    page = await owner.get("/manage/cancel")
    assert "Amounts include tax." in page.text
    assert "before tax" not in page.text
