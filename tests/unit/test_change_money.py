"""The money of a change or cancellation, as Zoho Billing works it out (docs/contracts.md §4.2).

Sources of the worked examples (expected values are theirs, or worked by hand in the comment):

- ZOHO_HELP: Zoho Billing help, Settings > Subscriptions > Proration
  (https://zohohelp.com/au/billing/help/settings/subscriptions/proration.html), scenario 1: Basic
  $300/month -> Professional $500/month, last billed April 5, changed April 15: credit $200,
  invoice $333.33, billed $133.33.
- ZOHO_FEATURE: Zoho Billing, "Prorated billing" (https://www.zoho.com/in/billing/features/
  prorated-billing/): Basic $50/month -> Premium $100/month with 16 of 31 days left:
  $100/31 x 16 = $51.61 invoiced, $50/31 x 16 = $25.81 credited, balance $25.80.
- Zoho gives no yearly, quantity or cancel-now example: those are built by hand from the same
  documented rule (exact, then rounded once to the cent) and say so.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from broker.config import BillingRulesSettings, UnusedAmount
from broker.core.change_money import (
    MoneyMove,
    Term,
    cancel_at_term_end_money,
    cancel_now_money,
    change_money,
    prorated,
)

RULES = BillingRulesSettings()  # Zoho's documented behaviour: prorate, credit note back
APRIL = Term(date(2026, 4, 5), date(2026, 5, 4))  # billed April 5, next billing May 5: 30 days
JULY = Term(date(2026, 7, 1), date(2026, 7, 31))  # 31 days
YEAR = Term(date(2026, 1, 1), date(2026, 12, 31))  # 365 days


def test_zoho_help_upgrade_mid_month_charges_the_difference_of_the_rounded_lines():
    # ZOHO_HELP: 10 days used, 20 left; $300 - $300/30 x 10 = $200; $500/30 x 20 = $333.33.
    money = change_money(
        RULES,
        old_price=Decimal("300"),
        new_price=Decimal("500"),
        term=APRIL,
        today=date(2026, 4, 15),
        new_cycle=False,
    )
    assert (money.days_left, money.term_days) == (20, 30)
    assert money.unused_credit == Decimal("200.00")
    assert money.new_charge == Decimal("333.33")
    assert (money.move, money.amount) == (MoneyMove.CHARGE, Decimal("133.33"))


def test_zoho_feature_page_rounds_each_line_once_not_the_day_rate():
    # ZOHO_FEATURE: $100/31 x 16 = 51.6129... -> $51.61 (a rounded rate, 3.23 x 16, is 51.68);
    # $50/31 x 16 = 25.8064... -> $25.81; balance $51.61 - $25.81 = $25.80.
    money = change_money(
        RULES,
        old_price=Decimal("50"),
        new_price=Decimal("100"),
        term=JULY,
        today=date(2026, 7, 16),  # July 16..31: 16 days left
        new_cycle=False,
    )
    assert (money.new_charge, money.unused_credit) == (Decimal("51.61"), Decimal("25.81"))
    assert (money.move, money.amount) == (MoneyMove.CHARGE, Decimal("25.80"))


def test_monthly_downgrade_mid_term_returns_a_credit_note_that_adds_up():
    # ZOHO_FEATURE reversed (Premium $100 -> Basic $50, 16 of 31 days left), by the same rule:
    # credit for unused Premium $51.61, Basic for the days left $25.81, credit note $25.80.
    money = change_money(
        RULES,
        old_price=Decimal("100"),
        new_price=Decimal("50"),
        term=JULY,
        today=date(2026, 7, 16),
        new_cycle=False,
    )
    assert (money.move, money.amount) == (MoneyMove.CREDIT_NOTE, Decimal("25.80"))
    assert money.unused_credit - money.new_charge == money.amount


def test_yearly_downgrade_mid_term_built_by_hand():
    # No Zoho yearly example; by hand: $1200/yr -> $600/yr on July 3 of a 365-day year,
    # days left July 3..Dec 31 = 29 (Jul 3-31) + 31 + 30 + 31 + 30 + 31 = 182.
    # 1200 x 182 / 365 = 598.356... -> 598.36; 600 x 182 / 365 = 299.178... -> 299.18;
    # credit note 598.36 - 299.18 = 299.18.
    money = change_money(
        RULES,
        old_price=Decimal("1200"),
        new_price=Decimal("600"),
        term=YEAR,
        today=date(2026, 7, 3),
        new_cycle=False,
    )
    assert (money.days_left, money.term_days) == (182, 365)
    assert (money.unused_credit, money.new_charge) == (Decimal("598.36"), Decimal("299.18"))
    assert (money.move, money.amount) == (MoneyMove.CREDIT_NOTE, Decimal("299.18"))


def test_yearly_upgrade_mid_term_built_by_hand():
    # By hand: $600/yr -> $1200/yr with 182 of 365 days left: 598.36 - 299.18 = 299.18 charged.
    money = change_money(
        RULES,
        old_price=Decimal("600"),
        new_price=Decimal("1200"),
        term=YEAR,
        today=date(2026, 7, 3),
        new_cycle=False,
    )
    assert (money.move, money.amount) == (MoneyMove.CHARGE, Decimal("299.18"))


def test_fewer_users_is_prorated_like_a_plan_change():
    # Zoho prorates quantity changes by the same rule (ZOHO_FEATURE: "or quantities are added or
    # removed"). By hand: 5 users x $10 = $50 -> 3 users = $30 a month, 20 of 30 days left:
    # unused 50 x 20/30 = 33.333 -> 33.33; new 30 x 20/30 = 20.00; credit note 13.33.
    money = change_money(
        RULES,
        old_price=Decimal("50"),
        new_price=Decimal("30"),
        term=APRIL,
        today=date(2026, 4, 15),
        new_cycle=False,
    )
    assert (money.unused_credit, money.new_charge) == (Decimal("33.33"), Decimal("20.00"))
    assert (money.move, money.amount) == (MoneyMove.CREDIT_NOTE, Decimal("13.33"))


def test_yearly_to_monthly_credits_the_unused_year_and_charges_the_first_month():
    # By hand, [unsure] rule (a new monthly term starts today): $500/yr with 182 of 365 days left
    # -> 500 x 182/365 = 249.315... -> 249.32 unused; first month $20.00; credit note 229.32.
    money = change_money(
        RULES,
        old_price=Decimal("500"),
        new_price=Decimal("20"),
        term=YEAR,
        today=date(2026, 7, 3),
        new_cycle=True,
    )
    assert (money.unused_credit, money.new_charge) == (Decimal("249.32"), Decimal("20.00"))
    assert (money.move, money.amount) == (MoneyMove.CREDIT_NOTE, Decimal("229.32"))


def test_a_downgrade_returns_what_the_vendors_billing_is_set_to_return():
    kwargs = {
        "old_price": Decimal("100"),
        "new_price": Decimal("50"),
        "term": JULY,
        "today": date(2026, 7, 16),
        "new_cycle": False,
    }
    refund = change_money(BillingRulesSettings(downgrade_returns=UnusedAmount.REFUND), **kwargs)  # type: ignore[arg-type]
    assert (refund.move, refund.amount) == (MoneyMove.REFUND, Decimal("25.80"))
    kept = change_money(BillingRulesSettings(downgrade_returns=UnusedAmount.NONE), **kwargs)  # type: ignore[arg-type]
    assert (kept.move, kept.amount, kept.unused_kept) == (
        MoneyMove.NONE,
        Decimal("0.00"),
        Decimal("25.80"),
    )


def test_without_proration_nothing_moves_now():
    money = change_money(
        BillingRulesSettings(prorate_changes=False),
        old_price=Decimal("100"),
        new_price=Decimal("50"),
        term=JULY,
        today=date(2026, 7, 16),
        new_cycle=False,
    )
    assert (money.move, money.amount, money.prorated) == (MoneyMove.NONE, Decimal("0.00"), False)


def test_cancel_now_on_a_prepaid_year_returns_nothing_by_default_and_says_what_is_kept():
    # By hand: $1200/yr, 182 of 365 days left: 1200 x 182/365 = 598.356... -> 598.36 unused.
    money = cancel_now_money(RULES, price=Decimal("1200"), term=YEAR, today=date(2026, 7, 3))
    assert (money.move, money.amount, money.unused_kept) == (
        MoneyMove.NONE,
        Decimal("0.00"),
        Decimal("598.36"),
    )


def test_cancel_now_refunds_the_unused_days_when_billing_is_set_to():
    # By hand: $300/month, 20 of 30 days left: 300 x 20/30 = 200.00.
    rules = BillingRulesSettings(cancel_now_returns=UnusedAmount.REFUND)
    money = cancel_now_money(rules, price=Decimal("300"), term=APRIL, today=date(2026, 4, 15))
    assert (money.move, money.amount) == (MoneyMove.REFUND, Decimal("200.00"))


def test_cancel_at_term_end_moves_nothing_and_ends_the_day_after_the_term():
    money = cancel_at_term_end_money(YEAR, date(2026, 7, 3))
    assert (money.move, money.amount, money.effective) == (
        MoneyMove.NONE,
        Decimal("0.00"),
        date(2027, 1, 1),
    )


def test_days_left_counts_today_and_never_goes_below_zero_or_above_the_term():
    assert APRIL.days_left(date(2026, 4, 5)) == 30
    assert APRIL.days_left(date(2026, 5, 4)) == 1
    assert APRIL.days_left(date(2026, 5, 5)) == 0
    assert APRIL.days_left(date(2026, 3, 1)) == 30


@pytest.mark.parametrize(
    ("price", "left", "days"),
    [(Decimal("-1"), 1, 30), (Decimal("NaN"), 1, 30), (Decimal("1"), 31, 30), (Decimal(1), 1, 0)],
)
def test_prorated_refuses_what_is_not_a_price_or_a_term(price: Decimal, left: int, days: int):
    with pytest.raises(ValueError, match="not"):
        prorated(price, left, days)


def test_a_term_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="before it starts"):
        Term(date(2026, 2, 1), date(2026, 1, 31))
