"""Starting on a restored store (deploy/README.md, "Backups and restore"): nothing stale reaches
the platform.

A backup's outbox holds what was pending when the copy was taken; the platform has moved on
since. So a broker that finds the store marked restored (``store.generation``) supersedes that
outbox before its worker starts, reads billing again (a reconciliation run: billing is the
truth), re-asserts each subscription's state from what billing said, clears the mark, and only
then starts the worker. Until billing has been read, nothing is sent: deliveries queued by
new webhooks wait, durably, like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import structlog

from broker.config import Settings
from broker.delivery.reconcile import ReconcileDeps, RunOutcome, run_reconciliation
from broker.errors import BrokerError
from broker.store import generation, pipeline, subscriptions
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Tx

log = structlog.get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]

# Subscriptions re-asserted per transaction, so a large store does not hold the writer long.
REASSERT_BATCH = 200


@dataclass(frozen=True)
class RestoreCheck:
    """What start-up found: whether a restore is pending, and what it superseded."""

    pending: bool
    restored_from: int | None = None
    superseded: tuple[int, ...] = ()


async def supersede_if_restored(store: StoreBackend, *, now: float) -> RestoreCheck:
    """At start-up, before the worker: supersede a restored store's stale outbox (once)."""
    marked = await store.read(generation.current)
    if not marked.restore_pending:
        return RestoreCheck(pending=False)
    stale = await store.write(partial(generation.supersede_stale, now=now))
    if stale:
        log.warning(
            "store.restore_superseded",
            restored_from=marked.restored_from,
            backup_taken_at=marked.backup_taken_at,
            superseded=len(stale),
            delivery_ids=stale[:50],
        )
    log.warning(
        "store.restored",
        restored_from=marked.restored_from,
        marked_by=marked.marked_by.value if marked.marked_by else None,
        then="reconciling with billing before any delivery is sent",
    )
    return RestoreCheck(True, marked.restored_from, tuple(stale))


async def reconcile_restored(
    deps: ReconcileDeps | None,
    store: StoreBackend,
    settings: Settings,
    *,
    clock: Callable[[], float],
    sleep: Sleep,
    retry_seconds: float,
) -> bool:
    """Read billing again until a run succeeds, then re-assert every subscription and clear
    the mark. True when done; False when billing is not configured (the mark stays, and the
    worker must not start: say so)."""
    if deps is None:
        log.error(
            "store.restore_needs_billing",
            reason="a restored store is reconciled with billing first; no [billing] section",
            then="deliveries wait; configure billing and restart",
        )
        return False
    while True:
        try:
            if not (await store.read(generation.current)).restore_pending:
                return True  # another replica finished the restore meanwhile
            report = await run_reconciliation(deps, trigger="restore")
        except BrokerError as error:  # the store is down: try again
            log.error("store.restore_reconcile_failed", error=str(error))
        else:
            if report.outcome is RunOutcome.DONE:
                await _reassert_all(store, settings, clock=clock, run_id=report.run_id)
                return True
            log.warning(
                "store.restore_reconcile_failed",
                outcome=report.outcome.value,
                error=report.error,
                retry_in_seconds=retry_seconds,
            )
        await sleep(retry_seconds)


async def _reassert_all(
    store: StoreBackend, settings: Settings, *, clock: Callable[[], float], run_id: int | None
) -> None:
    ids = await store.read(subscriptions.subscription_ids)
    queued = 0
    for start in range(0, len(ids), REASSERT_BATCH):
        batch = ids[start : start + REASSERT_BATCH]
        queued += await store.write(partial(_reassert, batch, settings=settings, now=clock()))
    done = await store.write(partial(generation.finish_restore, now=clock(), run_id=run_id))
    log.warning(
        "store.restore_reconciled",
        generation=done.number,
        reconcile_run=run_id,
        subscriptions=len(ids),
        queued=queued,
    )


def _reassert(ids: list[str], db: Tx, *, settings: Settings, now: float) -> int:
    """Queue billing's state (as just read) for each subscription where it differs from what
    the platform last acknowledged."""
    queued = 0
    for subscription_id in ids:
        result = pipeline.decide_again(
            db, subscription_id, settings=settings, now=now, cause="restore: re-assert"
        )
        queued += int(result.delivery_id is not None)
    return queued
