"""The readiness probe's heartbeat row: a real write that must reach the disk.

An empty transaction proves nothing (SQLite writes no page for it), so ``/readyz`` commits this
one row, rewritten each time.
"""

from __future__ import annotations

import os

import sqlite_utils


def write_heartbeat(db: sqlite_utils.Database, *, now: float) -> None:
    """The table is the probe's own, made here rather than in a migration: it holds nothing
    worth migrating and must exist on any schema version."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS readiness_heartbeat"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), written_at REAL NOT NULL, pid INTEGER)"
    )
    db.execute(
        "INSERT OR REPLACE INTO readiness_heartbeat (id, written_at, pid) VALUES (1, ?, ?)",
        [now, os.getpid()],
    )
