"""``broker copy-store``: the rows of a SQLite store into an empty PostgreSQL one, ids kept.

The source is read in one read transaction (one snapshot, even if a broker still writes to the
file); the target is written in one SERIALIZABLE transaction: all of it lands, or none. Tables
go parents first (foreign keys), identity sequences are moved past the copied ids, and each
table's count is checked against the source's before COMMIT. The migration bookkeeping is not
copied: the target keeps its own (``broker_migrations``), filled by its own migration run.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from graphlib import TopologicalSorter

from broker.store.engine.pg_admin import write
from broker.store.engine.pg_sql import to_psycopg
from broker.store.engine.postgres import PgTx
from broker.store.engine.tx import Tx
from broker.store.migrations.runner import MIGRATIONS_TABLE, pending_migrations
from broker.store.opening import migrate_postgres
from broker.store.sql import as_int, text

# SQLite's and the migration runners' own tables: never broker rows.
BOOKKEEPING = frozenset({MIGRATIONS_TABLE, "_sqlite_migrations", "_migrations", "sqlite_sequence"})
BATCH_ROWS = 1000


class CopyRefused(Exception):
    """The copy cannot start or did not check out; the message says why (and what to do)."""


@dataclass(frozen=True)
class CopiedTable:
    table: str
    rows: int


def copy_sqlite_to_pg(source: sqlite3.Connection, target: PgTx) -> list[CopiedTable]:
    """Copy every broker table of ``source`` into ``target``; the counts copied, per table."""
    source.execute("BEGIN")  # a read transaction: one snapshot of the file throughout
    try:
        _check_source_schema(source)
        tables = _in_parent_order(source)
        _refuse_if_holding_rows(target, tables)
        migrate_postgres(target)

        def copy_all(_tx: Tx) -> list[CopiedTable]:
            _refuse_if_holding_rows(target, tables)  # again, now under the transaction
            copied = [CopiedTable(table, _copy_table(source, target, table)) for table in tables]
            for table in tables:
                _move_sequences_past(target, table)
            _verify(target, copied)
            return copied

        copied = write(target, copy_all)
    finally:
        source.execute("ROLLBACK")
    return copied


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_source_schema(source: sqlite3.Connection) -> None:
    names = {
        row[0]
        for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]
        )
    }
    applied = []
    if names:
        applied = [row[0] for row in source.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")]  # noqa: S608
    pending = pending_migrations(applied)
    if pending:
        raise CopyRefused(
            f"the SQLite store is not up to date (pending: {', '.join(pending)}): "
            "run `broker migrate` on it first"
        )


def _in_parent_order(source: sqlite3.Connection) -> list[str]:
    rows = source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name"
    ).fetchall()
    tables = [row[0] for row in rows if row[0] not in BOOKKEEPING]
    graph = {
        table: {row[2] for row in source.execute(f"PRAGMA foreign_key_list({_q(table)})") if row[2]}
        - {table}
        for table in tables
    }
    return list(TopologicalSorter(graph).static_order())


def _refuse_if_holding_rows(target: PgTx, tables: list[str]) -> None:
    for table in tables:
        found = target.select_one("SELECT to_regclass(?) AS t", [table])
        if found is None or found["t"] is None:
            continue
        if target.select_one(f"SELECT 1 AS one FROM {_q(table)} LIMIT 1") is not None:  # noqa: S608
            raise CopyRefused(
                f"the target already holds broker rows (table {table}): copy only into an "
                "empty database"
            )


def _copy_table(source: sqlite3.Connection, target: PgTx, table: str) -> int:
    columns = [row[1] for row in source.execute(f"PRAGMA table_info({_q(table)})")]
    names = ", ".join(_q(column) for column in columns)
    marks = ", ".join("?" for _ in columns)
    insert = to_psycopg(f"INSERT INTO {_q(table)} ({names}) VALUES ({marks})")  # noqa: S608
    rows = source.execute(f"SELECT {names} FROM {_q(table)}")  # noqa: S608
    count = 0
    with target.conn.cursor() as cursor:
        while batch := rows.fetchmany(BATCH_ROWS):
            cursor.executemany(insert, batch)
            count += len(batch)
    return count


def _move_sequences_past(target: PgTx, table: str) -> None:
    """The next id an identity column hands out is past every copied one."""
    columns = target.select_all(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        [table],
    )
    for column in (text(row, "column_name") for row in columns):
        found = target.select_one("SELECT pg_get_serial_sequence(?, ?) AS seq", [table, column])
        if found is None or found["seq"] is None:
            continue
        target.execute(
            f"SELECT setval(?, (SELECT COALESCE(MAX({_q(column)}), 0) + 1"  # noqa: S608
            f" FROM {_q(table)}), false)",
            [found["seq"]],
        )


def _verify(target: PgTx, copied: list[CopiedTable]) -> None:
    for table in copied:
        row = target.select_one(f"SELECT COUNT(*) AS n FROM {_q(table.table)}")  # noqa: S608
        found = 0 if row is None else as_int(row, "n")
        if found != table.rows:
            raise CopyRefused(
                f"table {table.table}: {found} rows in the target, {table.rows} read: "
                "nothing was copied"
            )
