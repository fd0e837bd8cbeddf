"""The subscriptions table's writes (its owner module)."""

from __future__ import annotations

from broker.store.engine.tx import Tx


def queue_back_to_acknowledged(db: Tx) -> int:
    """Forget what was queued and not acknowledged: each subscription's queued state becomes the
    state the platform last acknowledged, so the pipeline queues billing's state wherever it
    differs from that (after a restore, whose queued states may never have been sent)."""
    return db.execute(
        "UPDATE subscriptions SET queued_json = acked_json"
        " WHERE queued_json IS NOT NULL OR acked_json IS NOT NULL"
    ).rowcount


def subscription_ids(db: Tx) -> list[str]:
    """Every subscription the store holds, in id order."""
    rows = db.select_all("SELECT subscription_id FROM subscriptions ORDER BY subscription_id")
    return [str(row["subscription_id"]) for row in rows]
