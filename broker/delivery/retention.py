"""Pruning what retention no longer keeps, inside ``serve`` on a schedule and from
``broker prune``: the same run either way.

One replica prunes at a time, under a lease in the store (``retention_lease``, like
reconciliation's lock: it works the same on SQLite and PostgreSQL, and a dead holder's lease
runs out). Each batch is one short write job that renews the lease in the same transaction, so
the writer is free between batches (webhooks keep flowing) and a pruner that lost its lease
deletes nothing more. On SQLite the freed pages go to the file's freelist and later writes
reuse them, so the file stops growing; it does not shrink (no VACUUM, which would rewrite it
while holding the writer).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import structlog

from broker.config.retention import RetentionSettings
from broker.errors import BrokerError
from broker.store import retention as rows
from broker.store import retention_lease as lease
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Tx
from broker.store.retention import PruneTarget

log = structlog.get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class PruneReport:
    """What one run pruned (or, in a dry run, would prune), per target."""

    counts: dict[PruneTarget, int]
    dry_run: bool = False
    busy: bool = False  # another process holds the lease: nothing was done
    lost_lease: bool = False  # the lease was taken over mid-run: the run stopped


@dataclass
class Pruner:
    store: StoreBackend
    settings: RetentionSettings
    clock: Callable[[], float]
    owner: str = field(default_factory=lambda: f"prune-{secrets.token_hex(6)}")

    async def run(self, *, dry_run: bool = False) -> PruneReport:
        now = self.clock()
        cutoffs = rows.cutoffs(self.settings, now)
        if dry_run:
            counts = {
                target: await self.store.read(partial(rows.count_prunable, target=target, before=t))
                for target, t in cutoffs.items()
            }
            return PruneReport(counts, dry_run=True)
        seconds = self.settings.lease_seconds
        taken = await self.store.write(
            partial(lease.take_lease, owner=self.owner, now=now, seconds=seconds)
        )
        if not taken:
            log.info("retention.busy", owner=self.owner)
            return PruneReport({}, busy=True)
        counts = dict.fromkeys(cutoffs, 0)
        try:
            for target, before in cutoffs.items():
                counts[target] = await self._prune(target, before)
        except lease.LeaseLost:
            log.warning("retention.lost_lease", owner=self.owner, pruned=_shown(counts))
            return PruneReport(counts, lost_lease=True)
        await self.store.write(partial(lease.release_lease, owner=self.owner))
        log.info("retention.pruned", **_shown(counts))
        return PruneReport(counts)

    async def _prune(self, target: PruneTarget, before: float) -> int:
        limit = self.settings.batch_rows
        total = 0
        while True:
            done = await self.store.write(partial(self._batch, target=target, before=before))
            total += done
            if done < limit:
                return total

    def _batch(self, db: Tx, *, target: PruneTarget, before: float) -> int:
        """One batch, in the transaction that renews the lease (LeaseLost: nothing pruned)."""
        now = self.clock()
        work = partial(
            rows.prune_batch, target=target, before=before, now=now, limit=self.settings.batch_rows
        )
        seconds = self.settings.lease_seconds
        return lease.while_held(db, work, owner=self.owner, now=now, seconds=seconds)


def _shown(counts: dict[PruneTarget, int]) -> dict[str, int]:
    return {str(target): n for target, n in counts.items()}


async def prune_on_schedule(
    pruner: Pruner, *, interval: float, sleep: Sleep = asyncio.sleep
) -> None:
    """Prune every ``interval`` seconds until cancelled; a failed run waits for the next."""
    while True:
        await sleep(interval)
        try:
            await pruner.run()
        except BrokerError as error:  # the store is down: say so, try again next time
            log.error("retention.run_failed", error=str(error))
