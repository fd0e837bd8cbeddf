"""Plain SQL helpers for hot paths: rows as dicts, and an upsert of exactly the given columns.

Both backends agree on ``INSERT … ON CONFLICT (key) DO UPDATE SET c = excluded.c``, so the upsert
is written once. Table and column names passed here are always ours; every value is bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from broker.store.engine.tx import Params, SqlValue, Tx


def select_all(db: Tx, sql: str, params: Params = ()) -> list[dict[str, Any]]:
    return db.select_all(sql, params)


def select_one(db: Tx, sql: str, params: Params = ()) -> dict[str, Any] | None:
    return db.select_one(sql, params)


def upsert(db: Tx, table: str, values: Mapping[str, SqlValue], *, key: str | Sequence[str]) -> None:
    """Insert a row, or update just these columns of the row with the same key."""
    keys = [key] if isinstance(key, str) else list(key)
    columns = list(values)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    placeholders = ", ".join("?" * len(columns))
    action = f"UPDATE SET {updates}" if updates else "NOTHING"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    sql += f" ON CONFLICT ({', '.join(keys)}) DO {action}"
    db.execute(sql, [values[c] for c in columns])
