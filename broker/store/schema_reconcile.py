"""Migration 5: reconciliation's tables (runs, drift, the lock, the cursor) and each
event's source; migration 10: subscriptions billing answers 404 for. Kept apart so
``migrations`` stays short; never edit one once shipped."""

from __future__ import annotations

from broker.store.engine.tx import Tx


def m005_reconciliation(db: Tx) -> None:
    for statement in _RECONCILIATION_SCHEMA:
        db.execute(statement)


_RECONCILIATION_SCHEMA = [
    # Where an event came from: its webhook, or reconciliation's read of billing's event log.
    "ALTER TABLE webhook_events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook'",
    # One row per run: when, what it read, what it found and queued, how it ended.
    """
    CREATE TABLE reconcile_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at REAL NOT NULL,
        finished_at REAL,
        trigger TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        since TEXT,
        outcome TEXT NOT NULL,
        events_read INTEGER NOT NULL DEFAULT 0,
        events_fed INTEGER NOT NULL DEFAULT 0,
        subscriptions_read INTEGER NOT NULL DEFAULT 0,
        full_reads INTEGER NOT NULL DEFAULT 0,
        customers_read INTEGER NOT NULL DEFAULT 0,
        drift INTEGER NOT NULL DEFAULT 0,
        queued INTEGER NOT NULL DEFAULT 0,
        error TEXT
    )
    """,
    # Each drift a run found, and what it queued (or, in a dry run, would have).
    """
    CREATE TABLE reconcile_drift (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES reconcile_runs (id),
        subscription_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        billing TEXT NOT NULL,
        broker TEXT NOT NULL,
        action TEXT NOT NULL,
        delivery_id INTEGER
    )
    """,
    "CREATE INDEX reconcile_drift_run ON reconcile_drift (run_id)",
    # One run at a time across processes: a lease, taken in a write transaction.
    """
    CREATE TABLE reconcile_lock (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    # Small named values that outlive a run: the event backfill's cursor (a day).
    "CREATE TABLE reconcile_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


def m010_missing_in_billing(db: Tx) -> None:
    # One row per subscription the broker held as billing that billing answered 404 for: what
    # became of it (reported, waiting for an operator, cancelled) and the Cancel it queued.
    # A later run that finds it in billing again deletes the row.
    db.execute(
        "ALTER TABLE reconcile_runs ADD COLUMN missing_in_billing INTEGER NOT NULL DEFAULT 0"
    )
    db.execute(
        """
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
        """
    )
