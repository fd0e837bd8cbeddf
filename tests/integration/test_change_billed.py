"""After a change applied at once, the page shows the money billing actually moved (the credit
note billing reports with ``creditnote_added``) and says plainly when it differs from the
preview; until billing has reported it, the page says the preview was an estimate.

The billing simulator's catalog: Standard 10.00 a user a month (USD); a subscription bought on
2026-06-10 has the term 2026-06-10..2026-07-09 (30 days). Going from 5 users to 3 on June 20
leaves 20 of 30 days. Zoho's documented rule (docs/contracts.md §4.2, each line rounded once):
50 x 20/30 = 33.33 unused, 30 x 20/30 = 20.00, a credit note of 13.33. A billing that rounds the
day rate first: 50/30 = 1.67 x 20 = 33.40, 1.00 x 20 = 20.00, a credit note of 13.40.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.support.pages import STANDARD, Browser, PageWorld
from tests.support.postgres import store_section

DAY = 86_400.0
FEWER_USERS = {"planid": STANDARD, "frequency": "monthly", "users": "3", "storage": "0"}


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Billing's figure is read back from the money events the store recorded: both backends."""
    return store_section(store_url)


async def downgraded_on_june_20(world: PageWorld, owner: Browser) -> str:
    live = await world.subscribed(owner, users=5)
    world.sim.set_today(date(2026, 6, 20))
    world.clock.advance(10 * DAY)
    assert (await owner.enter()).status == 303
    done = await owner.submit("/manage/change", {**FEWER_USERS, "confirm": "yes"})
    assert (done.status, done.location) == (303, "/manage"), done.text
    assert world.sim.subscriptions[live].quantity == 3
    return live


async def test_a_downgrade_billed_as_previewed_shows_billings_figure_without_a_difference_note(
    world: PageWorld, owner: Browser
):
    await downgraded_on_june_20(world, owner)
    await world.settle()
    page = await owner.get("/manage")
    assert "Billing issues a credit note of 13.33 USD." in page.text  # the preview, confirmed
    assert "Billing credited 13.33 USD, as shown." in page.text
    assert "not the" not in page.text
    assert "estimate" not in page.text


async def test_a_downgrade_billed_differently_shows_both_figures_and_says_billings_stands(
    world: PageWorld, owner: Browser
):
    world.sim.round_day_rate_first()
    await downgraded_on_june_20(world, owner)
    await world.settle()
    page = await owner.get("/manage")
    assert (
        "Billing credited 13.40 USD, not the 13.33 USD shown: billing&#39;s figure stands."
        in page.text
    ), page.text
    again = await owner.get("/manage")  # not a one-time notice: it stays for the term
    assert "Billing credited 13.40 USD, not the 13.33 USD shown" in again.text


async def test_before_billing_reports_the_credit_note_the_page_says_the_preview_was_an_estimate(
    world: PageWorld, owner: Browser
):
    world.sim.hold_webhooks()
    await downgraded_on_june_20(world, owner)
    page = await owner.get("/manage")
    assert (
        "The 13.33 USD shown was an estimate: billing has not reported its credit note yet."
        in page.text
    ), page.text
    assert "the credit note billing sends you" in page.text
    assert "Billing credited" not in page.text

    world.sim.release_webhooks()
    await world.settle()
    later = await owner.get("/manage")
    assert "Billing credited 13.33 USD, as shown." in later.text
    assert "estimate" not in later.text
