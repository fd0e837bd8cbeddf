"""Migration 15 (retention): the mark of a pruned webhook body, the indexes that let pruning find
old rows in bounded batches without scanning whole tables, and the pruning lease (one replica
prunes at a time).

Only rows still holding a body are in ``webhook_events_unpruned``, so that index shrinks as
pruning proceeds; the row itself, the deduplication key, stays forever.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m015_retention_pruning",
    Ddl(
        sqlite="ALTER TABLE webhook_events ADD COLUMN body_pruned_at REAL",
        postgresql="ALTER TABLE webhook_events ADD COLUMN body_pruned_at DOUBLE PRECISION",
    ),
    "CREATE INDEX webhook_events_unpruned ON webhook_events (received_at)"
    " WHERE body_pruned_at IS NULL",
    "CREATE INDEX attempts_started ON attempts (started_at)",
    "CREATE INDEX audit_log_at ON audit_log (at)",
    Ddl(
        sqlite="""
            CREATE TABLE retention_lease (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE retention_lease (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
)
