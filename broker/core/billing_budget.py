"""The daily Zoho Billing budget's rules: who may still spend a call, and when the day ends.

Pure: no I/O. Zoho Billing caps API calls per organisation per day, per minute and at once
(docs/contracts.md §4, "Limits"). The broker spends what is left in a stated order: customer
actions (checkout, change, cancel, reactivate, pause, resume) may spend to the limit; page reads
stop at ``page_reads_stale_percent`` (the page then shows what is stored, labelled "as of");
reconciliation and backfill slow down at ``background_slow_percent`` and stop for the day at
``background_stop_percent``, first of all.

Which kind of call a task makes is carried in a context variable (as structlog binds request
context): a request handler or a reconciliation run says once who it spends for, and every
billing call it makes below is counted at that priority. Tasks inherit it; nothing else does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class CallPriority(StrEnum):
    """Who a billing call is for, highest first."""

    CUSTOMER = "customer"  # a person acting on their subscription: checkout, change, cancel...
    PAGE_READ = "page_read"  # a page view re-reading what billing has (a stored copy will do)
    BACKGROUND = "background"  # reconciliation and backfill: can wait for tomorrow


# A ContextVar is the one module-level object here: it is a key, not state (each task has its
# own value), as aiohttp and structlog keep per-request context.
_PRIORITY: ContextVar[CallPriority] = ContextVar("billing_call_priority")


def current_priority() -> CallPriority:
    """The priority of the calls this task makes; a page read unless someone said otherwise."""
    return _PRIORITY.get(CallPriority.PAGE_READ)


@contextmanager
def spending_as(priority: CallPriority) -> Iterator[None]:
    """Count the billing calls made inside this block (and tasks it starts) at ``priority``."""
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


@dataclass(frozen=True)
class BudgetRules:
    """The limits and thresholds, from ``[billing]`` settings."""

    daily_limit: int
    per_minute: int
    page_reads_stale_percent: float
    background_slow_percent: float
    background_stop_percent: float

    def day_ceiling(self, priority: CallPriority) -> int:
        """Calls counted today after which ``priority`` may spend no more."""
        if priority is CallPriority.CUSTOMER:
            return self.daily_limit
        percent = (
            self.page_reads_stale_percent
            if priority is CallPriority.PAGE_READ
            else self.background_stop_percent
        )
        return math.floor(self.daily_limit * percent / 100)

    def minute_ceiling(self, priority: CallPriority, used_today: int) -> int:
        """Calls counted this minute after which ``priority`` waits for the next minute.

        Background work keeps half the minute free for people, and a quarter past its slow-down
        threshold, so a sweep never makes a checkout wait.
        """
        if priority is not CallPriority.BACKGROUND:
            return self.per_minute
        slowed = used_today >= self.daily_limit * self.background_slow_percent / 100
        return max(1, self.per_minute // (4 if slowed else 2))


@dataclass(frozen=True)
class BudgetDay:
    """One budget day in the configured time zone: its name and when it ends (epoch s)."""

    name: str  # ISO date, e.g. "2026-12-07"
    ends_at: float


def budget_day(now: float, zone: ZoneInfo) -> BudgetDay:
    """The budget day ``now`` falls in; the day boundary is midnight in ``zone``."""
    local = datetime.fromtimestamp(now, zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Add a calendar day in local terms (a DST day is 23 or 25 hours long).
    end = (start + timedelta(days=1)).replace(tzinfo=zone)
    return BudgetDay(local.date().isoformat(), end.timestamp())


def minute_name(now: float) -> str:
    """The minute ``now`` falls in (UTC; minutes do not depend on the zone)."""
    return datetime.fromtimestamp(now, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M")
