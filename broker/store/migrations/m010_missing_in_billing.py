"""Migration 10: subscriptions billing answered 404 for (what became of each, and the
Cancel it queued) and each run's count of them.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m010_missing_in_billing",
    Ddl(
        sqlite="ALTER TABLE reconcile_runs"
        " ADD COLUMN missing_in_billing INTEGER NOT NULL DEFAULT 0",
        postgresql="ALTER TABLE reconcile_runs"
        " ADD COLUMN missing_in_billing BIGINT NOT NULL DEFAULT 0",
    ),
    Ddl(
        sqlite="""
            CREATE TABLE billing_missing (
                subscription_id TEXT PRIMARY KEY,
                found_at REAL NOT NULL,
                last_seen_at REAL NOT NULL,
                run_id INTEGER,
                broker TEXT NOT NULL,
                state TEXT NOT NULL,
                delivery_id INTEGER,
                handled_at REAL,
                handled_by TEXT
            )
        """,
        postgresql="""
            CREATE TABLE billing_missing (
                subscription_id TEXT PRIMARY KEY,
                found_at DOUBLE PRECISION NOT NULL,
                last_seen_at DOUBLE PRECISION NOT NULL,
                run_id BIGINT,
                broker TEXT NOT NULL,
                state TEXT NOT NULL,
                delivery_id BIGINT,
                handled_at DOUBLE PRECISION,
                handled_by TEXT
            )
        """,
    ),
)
