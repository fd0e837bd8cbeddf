"""What every PostgreSQL writer shares: the write lock table and how a writing transaction opens.

The table itself is made by the migration runner's bookkeeping (``migrations.runner``).
"""

from __future__ import annotations

from typing import Any

import psycopg

# Every replica's writer locks this (empty) table first in each transaction: see pg_writer.
WRITE_LOCK_TABLE = "broker_write_lock"


def begin_write(conn: psycopg.Connection[Any]) -> None:
    """Open a writing transaction the way every broker writer must: SERIALIZABLE, then the
    write lock, which takes no snapshot, so the transaction sees everything the previous
    holder (a replica's writer, or an operator command) committed and races nobody."""
    conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
    conn.execute(f"LOCK TABLE {WRITE_LOCK_TABLE} IN EXCLUSIVE MODE")
