"""The readiness probe's heartbeat row: a real write that must reach the disk.

An empty transaction proves nothing (SQLite writes no page for it), so ``/readyz`` commits this
one row, rewritten each time.
"""

from __future__ import annotations

import os

from broker.store.engine.tx import Tx


def write_heartbeat(db: Tx, *, now: float) -> None:
    """The table is the probe's own, made here rather than in a migration: it holds nothing
    worth migrating and must exist on any schema version."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS readiness_heartbeat"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), written_at DOUBLE PRECISION NOT NULL,"
        " pid INTEGER)"
    )
    db.execute(
        "INSERT INTO readiness_heartbeat (id, written_at, pid) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, pid = excluded.pid",
        [now, os.getpid()],
    )
