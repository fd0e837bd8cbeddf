"""Refused webhook requests, counted by reason in this process and flushed to the store
(``webhook_refusals``) at most once per ``interval`` and at shutdown: a flood of bad requests
costs a dictionary increment each, never a write each. The refusal middleware
(``webhook_refusals``) notes each refusal here with the reason it gives the Prometheus counter
``broker_webhooks_refused_total``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from broker.store.database import Store
from broker.store.refusals import DayReason, add_refusals

log = structlog.get_logger(__name__)
FLUSH_INTERVAL_SECONDS = 60.0


class RefusalTally:
    """Counts in memory; ``flushes`` says how many writes the counting has cost."""

    def __init__(
        self, store: Store, clock: Callable[[], float], interval: float = FLUSH_INTERVAL_SECONDS
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval
        self._pending: Counter[DayReason] = Counter()
        self._last_flush = clock()
        self._flushing: asyncio.Task[None] | None = None
        self.flushes = 0

    def note(self, reason: str) -> None:
        now = self._clock()
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        self._pending[(day, reason)] += 1
        due = now - self._last_flush >= self._interval
        if due and (self._flushing is None or self._flushing.done()):
            self._last_flush = now
            self._flushing = asyncio.get_running_loop().create_task(self.flush())

    def pending(self, first_day: str | None, last_day: str | None) -> Counter[str]:
        """Counts not yet stored, by reason, over these days (the console adds them)."""
        totals: Counter[str] = Counter()
        for (day, reason), count in self._pending.items():
            if (first_day is None or day >= first_day) and (last_day is None or day <= last_day):
                totals[reason] += count
        return totals

    async def flush(self) -> None:
        """One write adding every pending count; on failure they stay pending."""
        counts, self._pending = self._pending, Counter()
        if not counts:
            return
        self.flushes += 1
        try:
            await self._store.write(lambda db: add_refusals(db, counts))
        except Exception:
            self._pending.update(counts)
            log.exception("webhooks.refusals_flush_failed", pending=sum(counts.values()))

    async def close(self) -> None:
        if self._flushing is not None:
            await self._flushing
        await self.flush()
