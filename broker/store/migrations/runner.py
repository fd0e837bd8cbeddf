"""Applies the migrations ``SCHEMA`` lists that a store has not recorded yet, on either backend.

One table records them on both: ``broker_migrations(name, applied_at)``. Each pending migration
runs in its own transaction together with its record, so a failure leaves the schema as it was:
on SQLite under ``BEGIN IMMEDIATE`` (the file's write lock), reading the record again before
applying; on PostgreSQL the whole run holds an advisory lock, so of replicas starting together
one applies every pending migration and the others wait, then find nothing left to do.

SQLite stores made before this runner recorded their migrations in sqlite-utils'
``_sqlite_migrations`` (the first ones, in the broker's own ``_migrations``): those records are
carried into ``broker_migrations`` once and the old tables dropped.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator

from broker.store.engine.tx import Dialect, Tx
from broker.store.migrations import SCHEMA
from broker.store.migrations.migration import Migration
from broker.store.sql import as_float, as_int

MIGRATIONS_TABLE = "broker_migrations"
# The table every PostgreSQL writer locks first (``engine.postgres.begin_write``); made here, with
# the bookkeeping, so a store ``broker migrate`` made takes operators' writes before a broker ran.
# The engine's name for it, repeated: importing it would load psycopg for SQLite stores too.
WRITE_LOCK_TABLE = "broker_write_lock"
# pg_advisory_xact_lock's key for "migrating the broker's schema" (any fixed 64-bit number).
MIGRATION_LOCK = 0x62726F6B6572  # "broker"
# What earlier runners recorded in: sqlite-utils' table (this set's rows), and the first runner's.
SQLITE_UTILS_TABLE = "_sqlite_migrations"
SQLITE_UTILS_SET = "broker"
FIRST_RUNNER_TABLE = "_migrations"

Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def apply_migrations(tx: Tx, *, now: Clock = _utc_now) -> list[str]:
    """Apply every migration ``tx``'s store has not recorded; return the names applied.

    ``tx`` is a connection outside any transaction (autocommit): the runner opens its own.
    """
    with _runner_lock(tx):
        if _bookkeeping_pending(tx):
            with _transaction(tx):
                _ensure_bookkeeping(tx)
        recorded = set(applied_migrations(tx))
        return [
            migration.name
            for migration in SCHEMA
            if migration.name not in recorded and _apply(tx, migration, now)
        ]


def applied_migrations(tx: Tx) -> list[str]:
    """The names recorded in ``broker_migrations``, in order."""
    rows = tx.select_all(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name")  # noqa: S608
    return [str(row["name"]) for row in rows]


def pending_migrations(applied: list[str]) -> list[str]:
    """The names in ``SCHEMA`` that ``applied`` lacks, in order."""
    return [migration.name for migration in SCHEMA if migration.name not in applied]


def _apply(tx: Tx, migration: Migration, now: Clock) -> bool:
    """Apply ``migration`` with its record; False if another process did while we waited."""
    with _transaction(tx):
        found = tx.select_one(
            f"SELECT name FROM {MIGRATIONS_TABLE} WHERE name = ?",  # noqa: S608
            [migration.name],
        )
        if found is not None:
            return False
        for statement in migration.sql(tx.dialect):
            tx.execute(statement)
        _record(tx, migration.name, str(now()))
    return True


@contextlib.contextmanager
def _runner_lock(tx: Tx) -> Iterator[None]:
    """On PostgreSQL, one runner at a time for the whole run (a session advisory lock, freed
    with the connection if the process dies): replicas starting together leave one to apply
    every pending migration while the others wait, then find nothing to do. SQLite's writers
    are one host's processes; its ``BEGIN IMMEDIATE`` and the second look suffice there."""
    if tx.dialect is not Dialect.POSTGRESQL:
        yield
        return
    tx.execute("SELECT pg_advisory_lock(?)", [MIGRATION_LOCK])
    try:
        yield
    finally:
        tx.execute("SELECT pg_advisory_unlock(?)", [MIGRATION_LOCK])


@contextlib.contextmanager
def _transaction(tx: Tx) -> Iterator[None]:
    """One migration (or the bookkeeping) with its record: all of it, or none."""
    tx.execute("BEGIN" if tx.dialect is Dialect.POSTGRESQL else "BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        tx.execute("ROLLBACK")
        raise
    tx.execute("COMMIT")


def _bookkeeping_pending(tx: Tx) -> bool:
    """Whether the tracking tables need any change. Checked without writing, so an up-to-date
    store opens on a read-only disk or database (and then answers 503 on writes)."""
    if tx.dialect is Dialect.POSTGRESQL:
        for table in (MIGRATIONS_TABLE, WRITE_LOCK_TABLE):
            found = tx.select_one("SELECT to_regclass(?) AS t", [table])
            if found is None or found["t"] is None:
                return True
        return False
    return not _sqlite_has_table(tx, MIGRATIONS_TABLE) or any(
        _sqlite_has_table(tx, old) for old in (SQLITE_UTILS_TABLE, FIRST_RUNNER_TABLE)
    )


def _ensure_bookkeeping(tx: Tx) -> None:
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}"
        " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    if tx.dialect is Dialect.POSTGRESQL:
        # Every writer locks this (empty) table first in each transaction (begin_write).
        tx.execute(f"CREATE TABLE IF NOT EXISTS {WRITE_LOCK_TABLE} (held BOOLEAN)")
        return
    if _sqlite_has_table(tx, SQLITE_UTILS_TABLE):
        rows = tx.select_all(
            f"SELECT name, applied_at FROM {SQLITE_UTILS_TABLE} WHERE migration_set = ?",  # noqa: S608
            [SQLITE_UTILS_SET],
        )
        for row in rows:
            _record(tx, str(row["name"]), str(row["applied_at"]))
        tx.execute(f"DROP TABLE {SQLITE_UTILS_TABLE}")
    if _sqlite_has_table(tx, FIRST_RUNNER_TABLE):
        for row in tx.select_all(f"SELECT id, applied_at FROM {FIRST_RUNNER_TABLE}"):  # noqa: S608
            position = as_int(row, "id")
            if 1 <= position <= len(SCHEMA):
                at = datetime.datetime.fromtimestamp(as_float(row, "applied_at"), datetime.UTC)
                _record(tx, SCHEMA[position - 1].name, str(at))
        tx.execute(f"DROP TABLE {FIRST_RUNNER_TABLE}")


def _record(tx: Tx, name: str, applied_at: str) -> None:
    tx.execute(
        f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)"  # noqa: S608
        " ON CONFLICT (name) DO NOTHING",
        [name, applied_at],
    )


def _sqlite_has_table(tx: Tx, name: str) -> bool:
    found = tx.select_one(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", [name]
    )
    return found is not None
