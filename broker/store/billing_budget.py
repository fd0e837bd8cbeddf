"""Owner of ``billing_call_budget``: Zoho Billing calls counted per day and per minute, shared by
every replica and kept across restarts, and the quota answer billing last gave.

One row per budget day (``day:2026-12-07``) and per minute (``minute:2026-12-07T05:45``). A call
is counted before it is sent, in its own write transaction, by a conditional increment: a
refused call is not counted, so the counter never passes a ceiling (no batching, no overshoot;
each retry of a call is counted as the call it is). Minute rows older than two minutes are
deleted as new ones are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from broker.core.billing_budget import BudgetRules, CallPriority
from broker.store.engine.tx import Tx
from broker.store.sql import as_int, number_or_none, text_or_none

MINUTE_ROWS_KEPT_SECONDS = 120.0


class Spent(StrEnum):
    """What asking for one call came to."""

    COUNTED = "counted"
    DAY_FULL = "day_full"  # this priority's share of the day is spent
    MINUTE_FULL = "minute_full"  # this minute's share is spent: try next minute
    QUOTA_ANSWERED = "quota_answered"  # billing itself said the quota is spent


@dataclass(frozen=True)
class Spend:
    outcome: Spent
    used_today: int
    quota_until: float | None = None


@dataclass(frozen=True)
class BudgetToday:
    """Today's figures: calls counted, and a quota answer still in force."""

    used: int
    quota_until: float | None
    quota_reason: str | None


def _bump(db: Tx, period: str, ceiling: int, now: float) -> int | None:
    """Count one call in ``period`` if it has fewer than ``ceiling``; the new count or None."""
    if ceiling <= 0:
        return None
    row = db.select_one(
        "INSERT INTO billing_call_budget (period, calls, updated_at) VALUES (?, 1, ?)"
        " ON CONFLICT (period) DO UPDATE SET calls = billing_call_budget.calls + 1,"
        " updated_at = excluded.updated_at WHERE billing_call_budget.calls < ?"
        " RETURNING calls",
        [period, now, ceiling],
    )
    return None if row is None else as_int(row, "calls")


def take_call(
    db: Tx,
    *,
    day: str,
    minute: str,
    rules: BudgetRules,
    priority: CallPriority,
    now: float,
) -> Spend:
    """Count one call against the day and the minute, or refuse it and count nothing."""
    db.execute(
        "DELETE FROM billing_call_budget WHERE period LIKE 'minute:%' AND updated_at < ?",
        [now - MINUTE_ROWS_KEPT_SECONDS],
    )
    today = budget_today(db, day=day)
    if today.quota_until is not None and today.quota_until > now:
        return Spend(Spent.QUOTA_ANSWERED, today.used, today.quota_until)
    if today.used >= rules.day_ceiling(priority):
        return Spend(Spent.DAY_FULL, today.used)  # before the minute: no wait for a spent day
    if _bump(db, f"minute:{minute}", rules.minute_ceiling(priority, today.used), now) is None:
        return Spend(Spent.MINUTE_FULL, today.used)
    used = _bump(db, f"day:{day}", rules.day_ceiling(priority), now)
    if used is None:
        db.execute(
            "UPDATE billing_call_budget SET calls = calls - 1 WHERE period = ?",
            [f"minute:{minute}"],
        )
        return Spend(Spent.DAY_FULL, today.used)
    return Spend(Spent.COUNTED, used)


def remember_quota_answer(db: Tx, *, day: str, until: float, reason: str, now: float) -> None:
    """Billing answered that the quota is spent: nobody calls it until ``until``."""
    db.execute(
        "INSERT INTO billing_call_budget (period, calls, quota_until, quota_reason, updated_at)"
        " VALUES (?, 0, ?, ?, ?) ON CONFLICT (period) DO UPDATE SET"
        " quota_until = excluded.quota_until, quota_reason = excluded.quota_reason,"
        " updated_at = excluded.updated_at",
        [f"day:{day}", until, reason, now],
    )


def budget_today(db: Tx, *, day: str) -> BudgetToday:
    row = db.select_one(
        "SELECT calls, quota_until, quota_reason FROM billing_call_budget WHERE period = ?",
        [f"day:{day}"],
    )
    if row is None:
        return BudgetToday(0, None, None)
    return BudgetToday(
        as_int(row, "calls"), number_or_none(row, "quota_until"), text_or_none(row, "quota_reason")
    )
