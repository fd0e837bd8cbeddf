"""What each day passing does to a subscription, in order: a scheduled pause starts, a scheduled
resume comes, dunning retries, and at the term's end a trial activates (or falls to the free plan),
a live subscription renews (or expires after its last billing cycle), a non-renewing one ends.
Pure: changes go through the ``Ledger``.
"""

from __future__ import annotations

from datetime import date

from .catalog import Plan
from .ledger import Ledger
from .records import Subscription
from .subscriptions import (
    DunningPolicy,
    collect,
    pause,
    previous_attribute,
    resume,
    retry_dunning,
)


def pass_day(
    ledger: Ledger, sub: Subscription, day: date, policy: DunningPolicy, free_plan: Plan | None
) -> None:
    if sub.status == "live" and sub.pause_scheduled is not None and sub.pause_scheduled <= day:
        pause(ledger, sub, day, sub.scheduled_resume)
    if sub.status == "paused" and sub.resume_date is not None and sub.resume_date <= day:
        resume(ledger, sub, day)
    if sub.status == "dunning":
        retry_dunning(ledger, sub, day, policy)
        return
    falls_to_free = sub.status == "trial" and sub.card_declines and free_plan is not None
    if falls_to_free and day == sub.term_end:
        ledger.emit_change("subscription_move_to_free_scheduled", sub)
    if day <= sub.term_end:
        return
    if sub.status == "trial":
        _end_trial(ledger, sub, day, free_plan)
    elif sub.status == "live":
        if 0 < sub.billing_cycles <= sub.cycles_billed:
            sub.status, sub.expired_at, sub.next_billing_at = "expired", day, None
            ledger.emit_change("subscription_expired", sub)
            return
        ledger.start_term(sub, day)
        ledger.emit_change("subscription_renewed", sub)
        collect(ledger, sub)
    elif sub.status == "non_renewing":
        sub.status, sub.cancelled_at = "cancelled", day
        sub.next_billing_at = None
        ledger.emit_change("subscription_cancelled", sub)


def _end_trial(ledger: Ledger, sub: Subscription, day: date, free_plan: Plan | None) -> None:
    if not sub.card_declines:
        sub.status, sub.activated_at = "live", day
        ledger.start_term(sub, day)
        ledger.emit_change("subscription_activation", sub)
        collect(ledger, sub)
    elif free_plan is not None:  # no card that pays: the trial falls to the free plan
        previous = previous_attribute(sub)
        sub.plan, sub.addons, sub.status, sub.activated_at = free_plan, [], "live", day
        ledger.start_term(sub, day)
        ledger.emit_change("subscription_downgraded", sub, previous)
    else:
        sub.status, sub.next_billing_at = "trial_expired", None
        ledger.emit_change("subscription_expired", sub)
