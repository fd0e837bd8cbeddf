"""What a change or a cancellation that skips checkout does to money, before it moves.

Pure: no I/O, no clock. The customer confirms on a page that shows the figure billing will charge
or credit, so it is computed the way Zoho Billing computes it (docs/contracts.md §4.2), under the
vendor's billing preferences (``config.billing_rules``):

- a prorated line is ``price x days left / days in the term``, exact, rounded **once** to the
  cent, half up. Zoho's own examples print $100/31 x 16 = $51.61 and $50/31 x 16 = $25.81 (a day
  rate rounded first would give $51.68, truncated $51.52), and $500/30 x 20 = $333.33; so no day
  rate is ever shown or multiplied;
- the net is the difference of the two rounded lines ($51.61 - $25.81 = $25.80), so every
  figure on the page adds up;
- the term's dates are both inclusive (June 1-30 is 30 days) and the day of the change is the
  first day of the new choice (Zoho's example: billed April 5, changed April 15, 10 days used and
  20 left of a 30-day term);
- a change of cycle starts a new term of the new cycle today: its whole first period is charged
  and the old term's unused days are credited [unsure: no Zoho example];
- without proration nothing moves now: the new price applies from the next billing date.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from broker.config.billing_rules import BillingRulesSettings, UnusedAmount

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
ONE_DAY = timedelta(days=1)


class MoneyMove(StrEnum):
    """Which way money goes when the customer confirms."""

    CHARGE = "charge"  # billing charges the customer
    CREDIT_NOTE = "credit_note"  # billing issues a credit note, spent on the next invoices
    REFUND = "refund"  # billing pays back
    NONE = "none"  # nothing moves now


_RETURNED = {
    UnusedAmount.CREDIT_NOTE: MoneyMove.CREDIT_NOTE,
    UnusedAmount.REFUND: MoneyMove.REFUND,
    UnusedAmount.NONE: MoneyMove.NONE,
}


@dataclass(frozen=True)
class Term:
    """The current billing term, both days inclusive."""

    starts: date
    ends: date

    def __post_init__(self) -> None:
        if self.ends < self.starts:
            raise ValueError(
                f"the term ends ({self.ends.isoformat()}) before it starts "
                f"({self.starts.isoformat()})"
            )

    @property
    def days(self) -> int:
        return (self.ends - self.starts).days + 1

    def days_left(self, today: date) -> int:
        """Paid days from ``today`` (counted) to the term's last day; none once it is over."""
        return max(0, min(self.days, (self.ends + ONE_DAY - max(today, self.starts)).days))


@dataclass(frozen=True)
class MoneyPreview:
    """What confirming does to money. ``amount`` is what moves (0 with ``NONE``); the two lines
    it comes from are kept so the page can show them and they add up:
    ``amount == |new_charge - unused_credit|`` unless the unused part is kept (``unused_kept``)."""

    move: MoneyMove
    amount: Decimal
    new_charge: Decimal  # the new choice for the days left (or its first period)
    unused_credit: Decimal  # the paid, unused part of the current term
    unused_kept: Decimal  # the part of unused_credit billing keeps (the rule returns nothing)
    days_left: int
    term_days: int
    effective: date
    prorated: bool
    new_cycle: bool = False  # new_charge is the new cycle's whole first period


def cents(amount: Decimal) -> Decimal:
    """An amount as billing shows it: to the cent, half up (a catalog's 100.0 is 100.00)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def prorated(price: Decimal, days_left: int, term_days: int) -> Decimal:
    """``price`` for ``days_left`` of ``term_days``, rounded once to the cent, half up."""
    if not price.is_finite() or price < 0:
        raise ValueError(f"price must be a finite amount of zero or more, not {price}")
    if term_days <= 0 or not 0 <= days_left <= term_days:
        raise ValueError(f"{days_left} days left of a {term_days}-day term is not a term")
    return cents(price * days_left / term_days)


def change_money(
    rules: BillingRulesSettings,
    *,
    old_price: Decimal,
    new_price: Decimal,
    term: Term,
    today: date,
    new_cycle: bool,
) -> MoneyPreview:
    """The money of changing, today, from a choice costing ``old_price`` a period to one costing
    ``new_price`` a period (of the new cycle when ``new_cycle``)."""
    left = term.days_left(today)
    unused = prorated(old_price, left, term.days) if rules.prorate_changes else ZERO
    if new_cycle:
        charge = cents(new_price)
    elif rules.prorate_changes:
        charge = prorated(new_price, left, term.days)
    else:
        charge = ZERO
    settled = _settled(
        charge, unused, rules.downgrade_returns, left, term, today, rules.prorate_changes
    )
    return replace(settled, new_cycle=new_cycle)


def cancel_now_money(
    rules: BillingRulesSettings, *, price: Decimal, term: Term, today: date
) -> MoneyPreview:
    """The money of cancelling today a term paid at ``price``."""
    left = term.days_left(today)
    unused = prorated(price, left, term.days)
    return _settled(ZERO, unused, rules.cancel_now_returns, left, term, today, True)


def cancel_at_term_end_money(term: Term, today: date) -> MoneyPreview:
    """Cancelling at the term's end: nothing is charged again, nothing is returned."""
    left = term.days_left(today)
    return MoneyPreview(
        MoneyMove.NONE, ZERO, ZERO, ZERO, ZERO, left, term.days, term.ends + ONE_DAY, False
    )


def _settled(
    charge: Decimal,
    unused: Decimal,
    returns: UnusedAmount,
    left: int,
    term: Term,
    today: date,
    prorate: bool,
) -> MoneyPreview:
    net = charge - unused
    effective = max(today, term.starts)
    if net > 0:
        return MoneyPreview(
            MoneyMove.CHARGE, net, charge, unused, ZERO, left, term.days, effective, prorate
        )
    move = _RETURNED[returns] if net < 0 else MoneyMove.NONE
    amount = -net if move is not MoneyMove.NONE else ZERO
    kept = -net if net < 0 and move is MoneyMove.NONE else ZERO
    return MoneyPreview(move, amount, charge, unused, kept, left, term.days, effective, prorate)
