"""Refused webhook requests, counted by reason in this process and written to the store
(``webhook_refusals``) by a timer, one ``interval`` after the first count not yet written, and at
shutdown: a flood of bad requests costs a dictionary increment each, never a write each, and a
quiet process still writes what it counted (other replicas' consoles see it; a crash loses at most
one interval). The refusal middleware (``webhook_refusals``) notes each refusal here with the reason
it gives the Prometheus counter ``broker_webhooks_refused_total``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from broker.errors import StoreError
from broker.store.engine.backend import StoreBackend
from broker.store.refusals import DayReason, add_refusals

log = structlog.get_logger(__name__)
FLUSH_INTERVAL_SECONDS = 60.0


class RefusalTally:
    """Counts in memory; ``flushes`` says how many writes the counting has cost, ``waiting``
    that the timer sleeps on nothing (nothing pending: no wake-ups, no writes)."""

    def __init__(
        self,
        store: StoreBackend,
        clock: Callable[[], float],
        interval: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval
        self._pending: Counter[DayReason] = Counter()
        self._noted = asyncio.Event()
        self._writing: asyncio.Task[None] | None = None
        self.flushes = 0
        self.waiting = False

    def note(self, reason: str) -> None:
        day = datetime.fromtimestamp(self._clock(), UTC).date().isoformat()
        self._pending[(day, reason)] += 1
        self._noted.set()

    def pending(self, first_day: str | None, last_day: str | None) -> Counter[str]:
        """Counts not yet stored, by reason, over these days (the console adds them)."""
        totals: Counter[str] = Counter()
        for (day, reason), count in self._pending.items():
            if (first_day is None or day >= first_day) and (last_day is None or day <= last_day):
                totals[reason] += count
        return totals

    async def run(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """The timer: while counts are pending, write them every ``interval``; until cancelled."""
        while True:
            while not self._pending:
                self._noted.clear()
                self.waiting = True
                await self._noted.wait()
            self.waiting = False
            await sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        """One write adding every pending count; on failure they stay pending for the next."""
        counts, self._pending = self._pending, Counter()
        if not counts:
            return
        self.flushes += 1
        self._writing = asyncio.create_task(self._write(counts))
        # Shielded: cancelling the timer mid-write must not lose counts the store may still commit.
        await asyncio.shield(self._writing)

    async def _write(self, counts: Counter[DayReason]) -> None:
        try:
            await self._store.write(lambda db: add_refusals(db, counts))
        except StoreError as error:  # the disk is in trouble: the next interval tries again
            self._pending.update(counts)
            log.warning(
                "webhooks.refusals_flush_failed", pending=sum(counts.values()), error=error.message
            )
        except Exception:  # a bug of ours: said loudly, and the counts still kept
            self._pending.update(counts)
            log.exception("webhooks.refusals_flush_failed", pending=sum(counts.values()))

    async def close(self) -> None:
        """At shutdown (the timer cancelled): a write under way ends, then what is left."""
        if self._writing is not None:
            await self._writing
        await self.flush()
