"""Plain SQL helpers for hot paths: rows as dicts, and an upsert of exactly the given columns.

Both backends agree on ``INSERT … ON CONFLICT (key) DO UPDATE SET c = excluded.c``, so the upsert
is written once. Table and column names passed here are always ours; every value is bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from broker.store.engine.tx import Params, SqlValue, Tx

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def select_all(db: Tx, sql: str, params: Params = ()) -> list[dict[str, SqlValue]]:
    return db.select_all(sql, params)


def select_one(db: Tx, sql: str, params: Params = ()) -> dict[str, SqlValue] | None:
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


def as_record(kind: type[R], row: Mapping[str, SqlValue]) -> R:
    """A frozen record built from a row whose columns are its fields (selected by name from the
    record's own field list). The schema gives each column its field's type; the values are
    not checked one by one here, as a per-field reader would."""
    return kind(**row)


# One column of a row as the type the schema gives it. ``as_int``/``as_float`` convert as
# ``int()``/``float()`` do (a COUNT or SUM may come back as either number); the others pass the
# value through and raise TypeError on a type the schema does not hold, never converting.


def as_int(row: Mapping[str, SqlValue], column: str) -> int:
    value = row[column]
    if value is None:
        raise _wrong(column, value, "an integer")
    return int(value)


def as_float(row: Mapping[str, SqlValue], column: str) -> float:
    value = row[column]
    if value is None:
        raise _wrong(column, value, "a number")
    return float(value)


def text(row: Mapping[str, SqlValue], column: str) -> str:
    value = row[column]
    if isinstance(value, str):
        return value
    raise _wrong(column, value, "text")


def text_or_none(row: Mapping[str, SqlValue], column: str) -> str | None:
    return None if row[column] is None else text(row, column)


def bytes_or_text(row: Mapping[str, SqlValue], column: str) -> bytes | str:
    """A body column, stored as received (bytes) or as text."""
    value = row[column]
    if isinstance(value, bytes | str):
        return value
    raise _wrong(column, value, "bytes or text")


def whole(row: Mapping[str, SqlValue], column: str) -> int:
    value = row[column]
    if isinstance(value, int):
        return value
    raise _wrong(column, value, "an integer")


def whole_or_none(row: Mapping[str, SqlValue], column: str) -> int | None:
    return None if row[column] is None else whole(row, column)


def number(row: Mapping[str, SqlValue], column: str) -> float:
    """A REAL column (an epoch, a latency); an integer stays as stored."""
    value = row[column]
    if isinstance(value, int | float):
        return value
    raise _wrong(column, value, "a number")


def number_or_none(row: Mapping[str, SqlValue], column: str) -> float | None:
    return None if row[column] is None else number(row, column)


def _wrong(column: str, value: SqlValue, wanted: str) -> TypeError:
    return TypeError(f"column {column} holds {type(value).__name__}, not {wanted}")
