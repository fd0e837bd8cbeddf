"""Plain SQL helpers for hot paths: rows as dicts, and an upsert of exactly the given columns.

sqlite-utils serves the schema and the operator tools well, but per call it re-reads table
schemas (upsert) and wraps each query in a savepoint; inside the group-committed transaction that
was most of the writer thread's work. Table and column names passed here are always ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlite_utils

Params = Sequence[Any] | Mapping[str, Any]


def select_all(db: sqlite_utils.Database, sql: str, params: Params = ()) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, params)
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def select_one(db: sqlite_utils.Database, sql: str, params: Params = ()) -> dict[str, Any] | None:
    cursor = db.conn.execute(sql, params)
    values = cursor.fetchone()
    if values is None:
        return None
    return dict(zip([column[0] for column in cursor.description], values, strict=True))


def upsert(
    db: sqlite_utils.Database, table: str, values: Mapping[str, Any], *, key: str | Sequence[str]
) -> None:
    """Insert a row, or update just these columns of the row with the same key."""
    keys = [key] if isinstance(key, str) else list(key)
    columns = list(values)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    # Table and column names are ours; every value is bound.
    placeholders = ", ".join("?" * len(columns))
    action = f"UPDATE SET {updates}" if updates else "NOTHING"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    sql += f" ON CONFLICT ({', '.join(keys)}) DO {action}"
    db.conn.execute(sql, [values[c] for c in columns])
