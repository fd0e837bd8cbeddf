"""What retention prunes, table by table, in bounded batches: each batch is one short write job
so the writer is never held long. The deletes themselves live in each table's owner module;
this module only says which to call and counts what a dry run would remove."""

from __future__ import annotations

from enum import StrEnum

from broker.config.retention import RetentionSettings
from broker.store import audit, events, outbox
from broker.store.engine.tx import Tx
from broker.store.sql import as_int

DAY = 86_400.0


class PruneTarget(StrEnum):
    WEBHOOK_BODIES = "webhook_bodies"
    DELIVERIES = "deliveries"  # finished ones, with their attempts
    ATTEMPTS = "attempts"
    AUDIT = "audit_log"


def cutoffs(settings: RetentionSettings, now: float) -> dict[PruneTarget, float]:
    """Each target's cutoff (rows older are pruned); a target kept forever (0 days) is absent."""
    days = {
        PruneTarget.WEBHOOK_BODIES: settings.webhook_body_days,
        PruneTarget.DELIVERIES: settings.delivery_days,
        PruneTarget.ATTEMPTS: settings.attempt_days,
        PruneTarget.AUDIT: settings.audit_days,
    }
    return {target: now - n * DAY for target, n in days.items() if n > 0}


def prune_batch(db: Tx, target: PruneTarget, *, before: float, now: float, limit: int) -> int:
    """Prune at most ``limit`` rows of ``target`` older than ``before``; return how many."""
    if target is PruneTarget.WEBHOOK_BODIES:
        return events.prune_bodies(db, before=before, now=now, limit=limit)
    if target is PruneTarget.DELIVERIES:
        return outbox.prune_deliveries(db, before=before, limit=limit)
    if target is PruneTarget.ATTEMPTS:
        return outbox.prune_attempts(db, before=before, limit=limit)
    return audit.prune_audit(db, before=before, limit=limit)


def count_prunable(db: Tx, target: PruneTarget, *, before: float) -> int:
    """How many rows of ``target`` a run would prune now (``broker prune --dry-run``)."""
    if target is PruneTarget.DELIVERIES:
        return outbox.count_prunable_deliveries(db, before=before)
    sql = {
        PruneTarget.WEBHOOK_BODIES: "SELECT COUNT(*) AS n FROM webhook_events"
        " WHERE body_pruned_at IS NULL AND received_at < ?",
        PruneTarget.ATTEMPTS: "SELECT COUNT(*) AS n FROM attempts WHERE started_at < ?",
        PruneTarget.AUDIT: "SELECT COUNT(*) AS n FROM audit_log WHERE at < ?",
    }[target]
    row = db.select_one(sql, [before])
    return as_int(row, "n") if row else 0
