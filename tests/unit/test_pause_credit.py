"""The credit a pause earns follows docs/contracts.md §5: Zoho's three worked examples, the edges
of the paid term, input validation, and properties that must hold for any pause."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.core.pause_credit import PauseCredit, pause_credit

JUNE_1, JUNE_30 = date(2026, 6, 1), date(2026, 6, 30)
MONTHLY = Decimal("300")


def june(day: int) -> date:
    return date(2026, 6, day)


def monthly(pause_start: date, resume_on: date) -> PauseCredit:
    return pause_credit(
        price=MONTHLY,
        term_start=JUNE_1,
        term_end=JUNE_30,
        pause_start=pause_start,
        resume_on=resume_on,
    )


# --- the documented examples -------------------------------------------------------------------


def test_monthly_pause_within_the_term_credits_five_days_at_ten_dollars() -> None:
    credit = monthly(june(10), june(15))

    assert credit == PauseCredit(
        paused_days=5, period_days=30, day_rate=Decimal("10"), amount=Decimal("50.00")
    )


def test_yearly_pause_credits_zohos_worked_example_9_58_a_day_times_60_is_574_80() -> None:
    """Zoho's example: $3500 a year over 365 days, 60 days paused, at $9.58 a day: $574.80.
    ($3500 / 365 is $9.5890...: the rate is cut to the cent, not rounded up to $9.59.)"""
    credit = pause_credit(
        price=Decimal("3500"),
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
        pause_start=date(2026, 3, 1),
        resume_on=date(2026, 4, 30),
    )

    assert (credit.paused_days, credit.period_days) == (60, 365)
    assert credit.day_rate == Decimal("9.58")
    assert credit.amount == Decimal("574.80")


def test_shown_rate_times_shown_days_is_the_shown_credit_400_a_year_for_70_days() -> None:
    """The figures a customer saw that did not add up (76.71 for 70 days at 1.10 a day): by the
    documented rule, $400 / 365 = $1.0958... is $1.09 a day, and 70 x $1.09 = $76.30."""
    credit = pause_credit(
        price=Decimal("400"),
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
        pause_start=date(2026, 3, 1),
        resume_on=date(2026, 5, 10),
    )

    assert (credit.paused_days, credit.day_rate, credit.amount) == (
        70,
        Decimal("1.09"),
        Decimal("76.30"),
    )


def test_resume_after_the_term_credits_only_the_paid_days_june_15_to_30() -> None:
    credit = monthly(june(15), date(2026, 7, 5))

    assert (credit.paused_days, credit.amount) == (16, Decimal("160.00"))


# --- boundaries --------------------------------------------------------------------------------


def test_days_paused_before_the_term_started_are_not_credited() -> None:
    credit = monthly(date(2026, 5, 25), june(4))

    assert (credit.paused_days, credit.amount) == (3, Decimal("30.00"))


def test_resume_on_the_last_day_of_the_term_leaves_that_day_uncredited() -> None:
    credit = monthly(june(20), JUNE_30)

    assert (credit.paused_days, credit.amount) == (10, Decimal("100.00"))


def test_resume_the_day_after_the_term_credits_through_the_last_day() -> None:
    credit = monthly(june(20), date(2026, 7, 1))

    assert (credit.paused_days, credit.amount) == (11, Decimal("110.00"))


def test_same_day_pause_and_resume_earns_nothing() -> None:
    credit = monthly(june(12), june(12))

    assert (credit.paused_days, credit.amount) == (0, Decimal("0.00"))


def test_pause_wholly_outside_the_term_earns_nothing() -> None:
    before = monthly(date(2026, 5, 1), date(2026, 5, 20))
    after = monthly(date(2026, 7, 2), date(2026, 7, 9))

    assert (before.paused_days, before.amount) == (0, Decimal("0.00"))
    assert (after.paused_days, after.amount) == (0, Decimal("0.00"))


def test_pause_covering_the_whole_term_credits_the_whole_price() -> None:
    credit = monthly(date(2026, 5, 1), date(2026, 8, 1))

    assert (credit.paused_days, credit.amount) == (30, Decimal("300.00"))


def test_day_rate_is_cut_to_the_cent_never_rounded_up() -> None:
    """$0.05 over 2 days is $0.025 a day; billing cuts it to $0.02 (as $9.589... became $9.58)."""
    credit = pause_credit(
        price=Decimal("0.05"),
        term_start=JUNE_1,
        term_end=june(2),
        pause_start=JUNE_1,
        resume_on=june(2),
    )

    assert (credit.day_rate, credit.amount) == (Decimal("0.02"), Decimal("0.02"))


# --- validation --------------------------------------------------------------------------------


def test_resume_before_pause_is_refused() -> None:
    with pytest.raises(ValueError, match=r"resume_on \(2026-06-09\) is before pause_start"):
        monthly(june(10), june(9))


def test_term_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match=r"term_end \(2026-05-31\) is before term_start"):
        pause_credit(
            price=MONTHLY,
            term_start=JUNE_1,
            term_end=date(2026, 5, 31),
            pause_start=june(2),
            resume_on=june(3),
        )


@pytest.mark.parametrize("price", [Decimal("-0.01"), Decimal("NaN"), Decimal("Infinity")])
def test_negative_or_non_finite_price_is_refused(price: Decimal) -> None:
    with pytest.raises(ValueError, match="price must be a finite amount of zero or more"):
        pause_credit(
            price=price,
            term_start=JUNE_1,
            term_end=JUNE_30,
            pause_start=june(2),
            resume_on=june(3),
        )


def test_negative_day_rate_places_is_refused() -> None:
    with pytest.raises(ValueError, match="day_rate_places must be 0 or more"):
        pause_credit(
            price=MONTHLY,
            term_start=JUNE_1,
            term_end=JUNE_30,
            pause_start=june(2),
            resume_on=june(3),
            day_rate_places=-1,
        )


# --- properties --------------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
offsets = st.integers(min_value=0, max_value=800)
rate_places = st.integers(min_value=0, max_value=6)


@given(
    price=prices,
    term_start=days,
    term_length=st.integers(min_value=0, max_value=400),
    pause_start=days,
    paused_for=offsets,
    places=rate_places,
)
def test_credit_never_exceeds_the_price_nor_the_term(
    price: Decimal,
    term_start: date,
    term_length: int,
    pause_start: date,
    paused_for: int,
    places: int,
) -> None:
    credit = pause_credit(
        price=price,
        term_start=term_start,
        term_end=term_start + timedelta(days=term_length),
        pause_start=pause_start,
        resume_on=pause_start + timedelta(days=paused_for),
        day_rate_places=places,
    )

    assert Decimal(0) <= credit.amount <= price
    assert 0 <= credit.paused_days <= min(credit.period_days, paused_for)
    assert credit.period_days == term_length + 1
    assert credit.amount == credit.amount.quantize(Decimal("0.01"))


@given(
    price=prices,
    term_start=days,
    term_length=st.integers(min_value=0, max_value=400),
    pause_start=days,
    paused_for=offsets,
    longer_by=st.integers(min_value=0, max_value=400),
    places=rate_places,
)
def test_pausing_longer_never_earns_less(
    price: Decimal,
    term_start: date,
    term_length: int,
    pause_start: date,
    paused_for: int,
    longer_by: int,
    places: int,
) -> None:
    def credit(resume_after: int) -> PauseCredit:
        return pause_credit(
            price=price,
            term_start=term_start,
            term_end=term_start + timedelta(days=term_length),
            pause_start=pause_start,
            resume_on=pause_start + timedelta(days=resume_after),
            day_rate_places=places,
        )

    shorter, longer = credit(paused_for), credit(paused_for + longer_by)

    assert shorter.paused_days <= longer.paused_days
    assert shorter.amount <= longer.amount


@given(price=prices, term_length=st.integers(min_value=0, max_value=400), paused=offsets)
def test_credit_is_exactly_the_shown_day_rate_times_the_paid_paused_days(
    price: Decimal, term_length: int, paused: int
) -> None:
    """Within the term every paused day is paid for, and the page's sentence must add up:
    the credit is the two-place day rate times the days, to the cent, with nothing left over."""
    term_end = JUNE_1 + timedelta(days=term_length)
    paused = min(paused, term_length + 1)

    credit = pause_credit(
        price=price,
        term_start=JUNE_1,
        term_end=term_end,
        pause_start=JUNE_1,
        resume_on=JUNE_1 + timedelta(days=paused),
    )

    assert credit.paused_days == paused
    assert credit.day_rate == credit.day_rate.quantize(Decimal("0.01"))
    assert credit.amount == credit.day_rate * paused
