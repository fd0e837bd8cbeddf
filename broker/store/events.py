"""The ``webhook_events`` table's writes beyond ingestion: pruning old raw bodies and erasing a
customer's. The row (event id, type, time, outcome) stays forever as the dedup key, as the
README promises; only the body goes, replaced by an empty one and marked ``body_pruned_at``.
Functions run inside store write transactions."""

from __future__ import annotations

from collections.abc import Sequence

from broker.store.engine.tx import Tx


def prune_bodies(db: Tx, *, before: float, now: float, limit: int) -> int:
    """Empty up to ``limit`` raw bodies received before ``before``; return how many."""
    return db.execute(
        "UPDATE webhook_events SET raw_body = ?, body_pruned_at = ?"
        " WHERE event_id IN (SELECT event_id FROM webhook_events"
        " WHERE body_pruned_at IS NULL AND received_at < ? ORDER BY received_at LIMIT ?)",
        [b"", now, before, limit],
    ).rowcount


def forget_subscriptions(db: Tx, subscription_ids: Sequence[str], *, now: float) -> int:
    """Erasure: empty the bodies of these subscriptions' events and unlink them (the event id
    stays, so a resent webhook is still a duplicate and recreates nothing)."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    sql = (
        "UPDATE webhook_events SET raw_body = ?, body_pruned_at = ?, subscription_id = NULL,"  # noqa: S608
        f" reason = NULL, request_id = NULL WHERE subscription_id IN ({marks})"
    )
    return db.execute(sql, [b"", now, *subscription_ids]).rowcount
