"""The broker's migrations on PostgreSQL: the same numbered list SQLite runs, applied once.

Replicas often start together. Each takes a transaction-scoped advisory lock before it looks at
what is applied, so one applies the pending migrations (all in one transaction: PostgreSQL's
DDL is transactional, so a failed rollout leaves the schema as it was) while the others wait,
then find nothing left to do.
"""

from __future__ import annotations

import datetime
from typing import Any

import psycopg

from broker.store.engine.postgres import WRITE_LOCK_TABLE
from broker.store.engine.tx import Tx
from broker.store.migrations import SCHEMA

# pg_advisory_xact_lock's key for "migrating the broker's schema" (any fixed 64-bit number).
MIGRATION_LOCK = 0x62726F6B6572  # "broker"
MIGRATIONS_TABLE = "broker_migrations"


def apply_pg_migrations(conn: psycopg.Connection[Any], tx: Tx) -> list[str]:
    """Apply every migration not yet recorded, under the advisory lock; return those applied."""
    conn.execute("BEGIN")
    try:
        tx.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}"
            " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        tx.execute(f"CREATE TABLE IF NOT EXISTS {WRITE_LOCK_TABLE} (held BOOLEAN)")
        done = {row["name"] for row in tx.select_all(f"SELECT name FROM {MIGRATIONS_TABLE}")}  # noqa: S608
        applied = []
        for _, name, migrate in SCHEMA:
            if name in done:
                continue
            migrate(tx)
            tx.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",  # noqa: S608
                [name, str(datetime.datetime.now(datetime.UTC))],
            )
            applied.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def applied_pg_migrations(tx: Tx) -> list[str]:
    rows = tx.select_all(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name")  # noqa: S608
    return [row["name"] for row in rows]
