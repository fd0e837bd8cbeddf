"""The daily Zoho Billing budget, kept in the store so every replica spends from one count.

``DailyBudget`` is the billing client's ``CallGate``: before each attempt it counts the call
(``store.billing_budget.take_call``) at the call's priority (``core.billing_budget``), or refuses
it with ``BillingBudgetSpent`` saying which share is spent and until when. Background work whose
minute share is spent waits for the next minute instead (that is its slowing down: half the
minute, then a quarter past ``billing.background_slow_percent``). A quota answer from
billing is remembered in the store until its Retry-After, else the end of the budget day. Every
refusal is logged (``billing.budget_refused``), with no id or secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import structlog

from broker.config import BillingSettings
from broker.core.billing_budget import BudgetRules, CallPriority, budget_day, minute_name
from broker.errors import BillingBudgetSpent, BillingRateLimited
from broker.store import billing_budget as rows
from broker.store.engine.backend import StoreBackend

log = structlog.get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]
MAX_QUOTA_WAIT_SECONDS = 86_400.0

REFUSED_BECAUSE = {
    rows.Spent.DAY_FULL: "today's share of the billing call budget for this kind of call is spent",
    rows.Spent.MINUTE_FULL: "this minute's share of the billing call budget is spent",
    rows.Spent.QUOTA_ANSWERED: "Zoho Billing answered that the organisation's API quota is spent",
}


@dataclass(frozen=True)
class BudgetFigures:
    """Today's budget as the console and the metrics show it."""

    day: str
    used: int
    limit: int
    quota_until: float | None
    background_stopped: bool  # reconciliation and backfill wait for tomorrow
    pages_stale: bool  # page views show stored copies

    @property
    def left(self) -> int:
        return 0 if self.quota_until is not None else max(0, self.limit - self.used)


def rules_of(settings: BillingSettings) -> BudgetRules:
    return BudgetRules(
        daily_limit=settings.daily_call_limit,
        per_minute=settings.calls_per_minute,
        page_reads_stale_percent=settings.page_reads_stale_percent,
        background_slow_percent=settings.background_slow_percent,
        background_stop_percent=settings.background_stop_percent,
    )


class DailyBudget:
    def __init__(
        self,
        store: StoreBackend,
        settings: BillingSettings,
        clock: Callable[[], float],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._settings = settings
        self._rules = rules_of(settings)
        self._clock = clock
        self._sleep = sleep

    async def admit(self, priority: CallPriority) -> None:
        while True:
            wait = await self._try(priority)
            if wait is None:
                return
            # Only background work gets here: it slows down rather than fail the run.
            log.info("billing.budget_slowed", priority=str(priority), wait=round(wait, 1))
            await self._sleep(wait)

    async def _try(self, priority: CallPriority) -> float | None:
        """None if the call is counted; the seconds to wait if background work must slow
        down; else raise ``BillingBudgetSpent``."""
        now = self._clock()
        day = budget_day(now, self._settings.budget_zone)
        spend = await self._store.write(
            partial(
                rows.take_call,
                day=day.name,
                minute=minute_name(now),
                rules=self._rules,
                priority=priority,
                now=now,
            ),
            urgent=priority is CallPriority.CUSTOMER,
        )
        if spend.outcome is rows.Spent.COUNTED:
            return None
        if spend.outcome is rows.Spent.MINUTE_FULL:
            until = (now // 60 + 1) * 60
            if priority is CallPriority.BACKGROUND:
                return until - now
        elif spend.outcome is rows.Spent.QUOTA_ANSWERED and spend.quota_until is not None:
            until = spend.quota_until
        else:
            until = day.ends_at
        because = REFUSED_BECAUSE[spend.outcome]
        log.warning(
            "billing.budget_refused",
            priority=str(priority),
            reason=str(spend.outcome),
            used_today=spend.used_today,
            daily_limit=self._rules.daily_limit,
            retry_after=round(until - now, 1),
        )
        raise BillingBudgetSpent(
            f"Billing was not called: {because}",
            hint="wait until the budget frees up; customer actions keep their share",
            retry_after=max(1.0, until - now),
            priority=str(priority),
            reason=str(spend.outcome),
        )

    async def quota_answered(self, error: BillingRateLimited) -> None:
        now = self._clock()
        day = budget_day(now, self._settings.budget_zone)
        # A Retry-After past a day is not believed: the longest Zoho limit is a day. Without
        # one, ``quota_hold_seconds`` (0: to the end of the budget day).
        hold = self._settings.quota_hold_seconds
        if error.retry_after is not None:
            until = now + min(error.retry_after, MAX_QUOTA_WAIT_SECONDS)
        elif hold > 0:
            until = min(now + hold, day.ends_at)
        else:
            until = day.ends_at
        code = error.details.get("zoho_code")
        await self._store.write(
            partial(
                rows.remember_quota_answer,
                day=day.name,
                until=until,
                reason=f"Zoho code {code}",
                now=now,
            ),
            urgent=True,
        )
        log.warning("billing.quota_answered", zoho_code=code, until=until)

    async def figures(self) -> BudgetFigures:
        now = self._clock()
        day = budget_day(now, self._settings.budget_zone)
        today = await self._store.read(partial(rows.budget_today, day=day.name))
        quota = today.quota_until if today.quota_until and today.quota_until > now else None
        return BudgetFigures(
            day=day.name,
            used=today.used,
            limit=self._rules.daily_limit,
            quota_until=quota,
            background_stopped=quota is not None
            or today.used >= self._rules.day_ceiling(CallPriority.BACKGROUND),
            pages_stale=quota is not None
            or today.used >= self._rules.day_ceiling(CallPriority.PAGE_READ),
        )
