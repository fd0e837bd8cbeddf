"""What happens to one subscription when it changes or is charged: plan changes, pause and resume
with their credit, and charging with dunning when the card declines. Each change is stamped and
emitted through the ``Ledger``. Pure.

Dunning [unsure, docs/contracts.md §5]: a declined charge moves the subscription to ``dunning``
and emits ``payment_declined`` (with the subscription); each retry day tries again; a success
returns it to ``live`` (``subscription_activation``), the last failure ends it ``unpaid``
(``subscription_unpaid``) or ``cancelled_from_dunning`` (``subscription_cancelled``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from .catalog import Plan
from .clock import ONE_DAY
from .ledger import Ledger
from .records import AddonLine, Subscription

CENT = Decimal("0.01")


class DunningOutcome(StrEnum):
    UNPAID = "unpaid"
    CANCEL = "cancel"


class Proration(StrEnum):
    """How the simulator rounds a prorated line; Zoho documents the first."""

    ZOHO = "zoho"  # price x days left / days in the term, rounded once (docs/contracts.md 4.2)
    DAY_RATE_FIRST = "day_rate_first"  # a day rate rounded first: a billing that differs


def prorated_line(price: Decimal, days_left: int, term_days: int, rule: Proration) -> Decimal:
    """``price`` for ``days_left`` of ``term_days``, to the cent (half up) by ``rule``. Zoho's
    example: $100/31 x 16 = $51.61 (a day rate rounded first would give $51.68)."""
    if rule is Proration.DAY_RATE_FIRST:
        return (price / term_days).quantize(CENT, rounding=ROUND_HALF_UP) * days_left
    return (price * days_left / term_days).quantize(CENT, rounding=ROUND_HALF_UP)


def downgrade_credit(old_amount: Decimal, sub: Subscription, day: date, rule: Proration) -> Decimal:
    """The credit note of a same-cycle downgrade made on ``day``, the first day of the new
    choice: the old price's unused days less the new price over the same days, each line
    rounded on its own (Zoho's help, "Proration": $51.61 - $25.81 = $25.80)."""
    days_left = max(0, (sub.term_end + ONE_DAY - max(day, sub.term_start)).days)
    term_days = sub.period_days
    return prorated_line(old_amount, days_left, term_days, rule) - prorated_line(
        sub.amount, days_left, term_days, rule
    )


@dataclass(frozen=True)
class DunningPolicy:
    retry_days: tuple[int, ...] = (3, 7)  # days after the first decline that retry the charge
    outcome: DunningOutcome = DunningOutcome.UNPAID


def pause_credit(
    amount: Decimal, term_start: date, term_end: date, paused_at: date, resumed_on: date
) -> Decimal:
    """Credit for the paid days a pause left unused (docs/contracts.md section 5), to the cent.

    The day rate (price / days in the billing period) is cut to the cent, then multiplied by the
    paused days within the paid term, as Zoho's worked example does ($3500 / 365 -> $9.58 a day,
    x 60 days = $574.80).
    """
    period_days = (term_end - term_start).days + 1
    paid_days = max(0, (min(resumed_on, term_end + ONE_DAY) - paused_at).days)
    day_rate = (amount / period_days).quantize(CENT, rounding=ROUND_DOWN)
    return day_rate * paid_days


def previous_attribute(sub: Subscription) -> dict[str, Any]:
    return {
        "status": sub.status,
        "quantity": sub.quantity,
        "plan_code": sub.plan.plan_code,
        "plan_id": sub.plan.plan_id,
        "plan_name": sub.plan.name,
    }


def apply_change(
    ledger: Ledger,
    sub: Subscription,
    plan: Plan,
    quantity: int,
    addons: list[AddonLine],
    *,
    end_of_term: bool = False,
) -> None:
    previous = previous_attribute(sub)
    old_amount, old_months = sub.amount, sub.plan.months
    sub.plan, sub.quantity, sub.addons, sub.end_of_term = plan, quantity, addons, end_of_term
    if plan.months != old_months and sub.status != "trial":
        ledger.start_term(sub, ledger.calendar.today)  # a new interval starts a new term
    upgraded = sub.amount > old_amount
    kind = "subscription_upgraded" if upgraded else "subscription_downgraded"
    ledger.emit_change(kind, sub, previous)


def pause(ledger: Ledger, sub: Subscription, day: date, resume_date: date | None) -> None:
    sub.status, sub.paused_at, sub.resume_date = "paused", day, resume_date
    sub.pause_scheduled = sub.scheduled_resume = None
    ledger.emit_change("subscription_paused", sub)


def resume(ledger: Ledger, sub: Subscription, day: date) -> None:
    assert sub.paused_at is not None
    credit = pause_credit(sub.amount, sub.term_start, sub.term_end, sub.paused_at, day)
    sub.credits += credit
    sub.last_pause_credit = credit
    sub.status, sub.paused_at, sub.resume_date = "live", None, None
    out_of_term = day > sub.term_end
    if out_of_term:
        ledger.start_term(sub, day)
    ledger.emit_change("subscription_resumed", sub)
    if out_of_term:  # a new invoice, with the pause credit applied
        collect(ledger, sub)


def collect(ledger: Ledger, sub: Subscription) -> bool:
    """Charge the term; a declining card starts dunning. True when the term is paid."""
    sub.cycles_billed += 1
    if not sub.card_declines or sub.amount - min(sub.credits, sub.amount) <= 0:
        ledger.charge(sub)
        return True
    sub.status, sub.dunning_since, sub.dunning_retries = "dunning", ledger.calendar.today, 0
    _declined(ledger, sub)
    return False


def _declined(ledger: Ledger, sub: Subscription) -> None:
    sub.updated_time = ledger.calendar.stamp()
    payment = {
        "amount": float(sub.amount),
        "date": ledger.calendar.today.isoformat(),
        "status": "failure",
        "customer_id": sub.customer.customer_id,
        "gateway_message": "The card was declined.",
    }
    ledger.emit("payment_declined", {"payment": payment, "subscription": sub.to_json()})


def retry_dunning(ledger: Ledger, sub: Subscription, day: date, policy: DunningPolicy) -> None:
    """On a retry day, charge again; after the last failed retry, end as the policy says."""
    assert sub.dunning_since is not None
    if sub.dunning_retries >= len(policy.retry_days):
        return
    due = sub.dunning_since + ONE_DAY * policy.retry_days[sub.dunning_retries]
    if day < due:
        return
    sub.dunning_retries += 1
    if not sub.card_declines:
        sub.status, sub.dunning_since = "live", None
        ledger.emit_change("subscription_activation", sub)
        ledger.charge(sub)
    elif sub.dunning_retries < len(policy.retry_days):
        _declined(ledger, sub)
    elif policy.outcome is DunningOutcome.UNPAID:
        sub.status = "unpaid"
        ledger.emit_change("subscription_unpaid", sub)
    else:
        sub.status, sub.cancelled_at, sub.next_billing_at = "cancelled_from_dunning", day, None
        ledger.emit_change("subscription_cancelled", sub)
