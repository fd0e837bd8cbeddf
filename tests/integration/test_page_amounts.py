"""Amounts billing sends as formatted text: the pause page reads
``"1,200.00"`` as 1200, and an amount it cannot read makes the preview say so, never a 500."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from broker.core.money import parse_amount
from tests.support.basics import ZAPIKEY, body_of, subscription_event
from tests.support.pages import OWNER_ZGID, OWNER_ZUID, STANDARD_CODE, Browser, PageWorld

SUBSCRIPTION_ID = "100000000000000777"


@pytest.fixture
def page_plans() -> dict[str, Any]:
    """These pages are a vendor's who offers a pause that keeps the app working
    (tests/integration/test_pause_policy.py covers each policy and the default, which offers
    none)."""
    return {"pause_policy": "keep"}


async def billing_says(world: PageWorld, browser: Browser, amount: object) -> None:
    """A webhook, as Zoho would post it, for a live June subscription with this ``amount``."""
    payload = subscription_event(
        subscription_id=SUBSCRIPTION_ID,
        plan_code=STANDARD_CODE,
        zuid=OWNER_ZUID,
        zgid=OWNER_ZGID,
        current_term_starts_at="2026-06-01",
        current_term_ends_at="2026-06-30",
        next_billing_at="2026-07-01",
        amount=amount,
    )
    response = await browser.client.post(
        "/webhooks/billing",
        data=body_of(payload),
        headers={"zapikey": ZAPIKEY, "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()


async def test_pause_preview_reads_a_thousands_separated_amount(world: PageWorld, owner: Browser):
    """1,200.00 over June's 30 days, paused June 10 up to June 20: 10 days x 40.00 = 400.00."""
    await billing_says(world, owner, "1,200.00")
    page = await owner.get("/manage/pause", params={"resume_on": "2026-06-20"})
    assert page.status == 200, page.text
    assert '<strong id="credit-amount">400.00 USD</strong>' in page.text
    assert "1200.00 USD over the 30 days" in page.text
    overview = await owner.get("/manage")
    assert "<dd>1200.00 USD</dd>" in overview.text


@pytest.mark.parametrize("amount", ["about 1200", "1.200,00", "-5.00", "NaN", "Infinity", True])
async def test_pause_preview_with_an_unreadable_amount_says_it_is_not_available(
    world: PageWorld, owner: Browser, amount: object
):
    await billing_says(world, owner, amount)
    page = await owner.get("/manage/pause", params={"resume_on": "2026-06-20"})
    assert page.status == 200, page.text
    assert "credit-amount" not in page.text
    assert "The credit cannot be previewed: billing has not given a price we can read" in page.text
    assert 'action="/manage/pause"' in page.text  # pausing itself still works
    overview = await owner.get("/manage")
    assert overview.status == 200


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1,200.00", Decimal("1200.00")),
        ("12,345,678.9", Decimal("12345678.9")),
        (" 300 ", Decimal("300")),
        ("0.50", Decimal("0.50")),
        (1200, Decimal("1200")),
        (99.9, Decimal("99.9")),
        ("1,20.00", None),  # not a thousands grouping
        ("1.200,00", None),  # a decimal comma is ambiguous: not guessed
        ("", None),
        (None, None),
        ("-1", None),
        ("1e3", None),
        (False, None),
    ],
)
def test_parse_amount(given: object, expected: Decimal | None):

    assert parse_amount(given) == expected
