"""Migration 11 (retention): the mark of a pruned webhook body, the indexes that let pruning
find old rows in bounded batches without scanning whole tables, and the pruning lease. Never
edit it once shipped."""

from __future__ import annotations

from broker.store.engine.tx import Tx

_RETENTION_SCHEMA = [
    # When the raw body was pruned (NULL: still held). The row itself, the dedup key, stays.
    "ALTER TABLE webhook_events ADD COLUMN body_pruned_at REAL",
    # Only rows still holding a body are indexed, so the index shrinks as pruning proceeds.
    "CREATE INDEX webhook_events_unpruned ON webhook_events (received_at)"
    " WHERE body_pruned_at IS NULL",
    "CREATE INDEX attempts_started ON attempts (started_at)",
    "CREATE INDEX audit_log_at ON audit_log (at)",
    # One pruning run at a time across replicas: a lease, taken in a write transaction.
    """
    CREATE TABLE retention_lease (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
]


def m011_retention(db: Tx) -> None:
    for statement in _RETENTION_SCHEMA:
        db.execute(statement)
