"""The one handle every store job gets: a transaction on SQLite or on PostgreSQL.

Store functions are written once, in the SQL both dialects agree on (``?`` placeholders or
``:name``, ``INSERT … ON CONFLICT``, ``RETURNING``), and take a ``Tx``. The few places where the
dialects differ ask the ``Tx`` for the fragment (``json_text``, ``skip_locked``), so anything
dialect-specific stays inside ``store/``.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol

# What a statement binds and a row holds: the column types both drivers agree on (a bool binds
# as an integer flag on both).
SqlValue = str | int | float | bytes | None
Params = Sequence[SqlValue] | Mapping[str, SqlValue]


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Cursor(Protocol):
    """What a job may use of a statement's result, on both drivers."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Sequence[Sequence[object]] | None: ...

    def fetchone(self) -> Sequence[SqlValue] | None: ...

    def fetchall(self) -> Sequence[Sequence[SqlValue]]: ...


class Tx(ABC):
    """A connection inside a transaction the store opened (and will commit or roll back)."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement written with ``?`` or ``:name`` placeholders."""

    def select_all(self, sql: str, params: Params = ()) -> list[dict[str, SqlValue]]:
        cursor = self.execute(sql, params)
        names = _column_names(cursor)
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def select_one(self, sql: str, params: Params = ()) -> dict[str, SqlValue] | None:
        cursor = self.execute(sql, params)
        values = cursor.fetchone()
        if values is None:
            return None
        return dict(zip(_column_names(cursor), values, strict=True))

    def json_text(self, column: str, key: str) -> str:
        """An SQL expression for the text of ``key`` in the JSON object stored in ``column``."""
        if self.dialect is Dialect.POSTGRESQL:
            return f"({column}::json ->> '{key}')"
        return f"json_extract({column}, '$.{key}')"

    def skip_locked(self, table: str) -> str:
        """Suffix of a claim's SELECT: rows another replica is claiming are passed over.

        SQLite has one writer at a time, so there is nothing to skip there.
        """
        if self.dialect is Dialect.POSTGRESQL:
            return f" FOR UPDATE OF {table} SKIP LOCKED"
        return ""

    def notify(self, channel: str) -> None:
        """Wake other replicas' workers once this transaction commits (PostgreSQL NOTIFY);
        nobody else writes to a SQLite file, so there it does nothing."""
        return

    def flush_notifications(self) -> None:
        """Send what ``notify`` asked for: the store calls this just before COMMIT."""
        return


def _column_names(cursor: Cursor) -> list[str]:
    """The result's column names (each driver describes a column with its name first)."""
    return [str(column[0]) for column in cursor.description or ()]


class SqliteTx(Tx):
    dialect = Dialect.SQLITE

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self.conn.execute(sql, params)

    def close(self) -> None:
        self.conn.close()
