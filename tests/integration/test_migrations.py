"""The migration runner: stores made by earlier brokers migrate forward keeping every row and end
with the schema a fresh store has, on both backends; every migration is applied and recorded
once, in ``broker_migrations``, however often and however many runners run.

The old stores are literal fixtures (``tests/fixtures/stores/``, see its README): made by the
broker's code at an earlier commit (its ``broker migrate``, then representative rows) and dumped
as plain SQL, so these tests need no old code to run.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.store.engine import pg_admin, sqlite
from broker.store.engine.tx import Tx
from broker.store.migrations.runner import apply_migrations
from broker.store.opening import migrate_postgres

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
ALL_MIGRATIONS = [
    "m001_initial",
    "m002_audit_log_and_checkouts",
    "m003_sign_in_with_zoho_flows",
    "m004_landing_nonces_and_verified_visits",
    "m005_reconciliation",
    "m006_webhook_refusals",
    "m007_zgid_evidence_and_binding_requests",
    "m008_billing_products",
    "m009_money_events",
    "m010_missing_in_billing",
    "m011_store_generation",
    "m012_subscription_state_and_reason",
    "m013_ops_sessions",
    "m014_billing_call_budget",
    "m015_retention_pruning",
]
# Each fixture's commit, and what the code at that commit had applied (so what is left to apply).
OLD_STORES = {"1453866": ALL_MIGRATIONS[:6], "61af82a": ALL_MIGRATIONS[:10]}
# The webhook body the fixtures were written with (tests/fixtures/stores/README.md): not UTF-8
# clean on purpose, with a NUL, quotes and a percent sign; it must come back byte for byte.
RAW_BODY = b'{"event_id":"ev-1","data":{"caf\xc3\xa9":"50% off; it\'s \\"quoted\\""}}\x00\xff\n'
CONFLICT = "conflict: billing says plan PRO but the platform holds BASIC (it's 100% sure)"
# Tables that are the runners' bookkeeping, not broker rows.
BOOKKEEPING = {"broker_migrations", "_sqlite_migrations", "_migrations", "sqlite_sequence"}


# --- SQLite ---------------------------------------------------------------------------------


def sqlite_store_from(commit: str, path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / f"sqlite-{commit}.sql").read_text())
    conn.close()


@contextlib.contextmanager
def sqlite_tx(path: Path) -> Iterator[Tx]:
    db = sqlite.connect(path)
    try:
        yield db
    finally:
        db.close()


def sqlite_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every broker table's rows, each as a dict, in a stable order."""
    with sqlite_tx(path) as db:
        tables = [
            row["name"]
            for row in db.select_all("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row["name"] not in BOOKKEEPING
        ]
        return {table: _sorted(db.select_all(f"SELECT * FROM {table}")) for table in tables}  # noqa: S608


def sqlite_schema(path: Path) -> list[tuple[str, str, str, str]]:
    """Every table and index: type, name, table, and its SQL with whitespace collapsed."""
    with sqlite_tx(path) as db:
        rows = db.select_all(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        )
    return [(r["type"], r["name"], r["tbl_name"], _collapsed(r["sql"] or "")) for r in rows]


def _collapsed(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")")


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: repr(sorted(row.items())))


def kept(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """``after``'s rows of ``before``'s tables, cut to the columns ``before`` had."""
    return {
        table: _sorted([{k: row[k] for k in rows[0]} for row in after[table]]) if rows else []
        for table, rows in before.items()
    }


def assert_representative_rows(rows: dict[str, list[dict[str, Any]]]) -> None:
    """The rows the fixtures were written with, by their literal values."""
    events = {row["event_id"]: row for row in rows["webhook_events"]}
    assert bytes(events["ev-1"]["raw_body"]) == RAW_BODY
    decisions = {row["subscription_id"]: row["decision"] for row in rows["subscriptions"]}
    assert decisions == {"sub-1": "parked", "sub-2": CONFLICT}
    attempts = [row for row in rows["attempts"] if row["delivery_id"] == 1]
    assert sorted(row["outcome"] for row in attempts) == ["retry", "timeout"]
    [dead] = [row for row in rows["deliveries"] if row["id"] == 1]
    assert (dead["state"], dead["uncertain"], dead["last_status"]) == ("dead", 1, 503)
    assert [row["zuid"] for row in rows["users"]] == ["7001"]
    assert [row["display_name"] for row in rows["customers"]] == ["Ada O'Hara"]
    assert [row["action"] for row in rows["audit_log"]] == ["change_plan"]
    assert [row["hostedpage_id"] for row in rows["checkouts"]] == ["hp-1"]
    assert [row["dry_run"] for row in rows["reconcile_runs"]] == [1]


@pytest.mark.parametrize("commit", sorted(OLD_STORES))
def test_an_old_sqlite_store_migrates_forward_keeping_every_row(
    commit: str, tmp_path: Path
) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    sqlite_store_from(commit, old)
    before = sqlite_rows(old)
    with sqlite_tx(old) as db:
        recorded_at = db.select_one(
            "SELECT applied_at FROM _sqlite_migrations WHERE name = 'm001_initial'"
        )
        applied = apply_migrations(db)
        names = [r["name"] for r in db.select_all("SELECT name FROM broker_migrations")]
        carried = db.select_one(
            "SELECT applied_at FROM broker_migrations WHERE name = 'm001_initial'"
        )
        old_tables = db.select_all(
            "SELECT name FROM sqlite_master WHERE name IN ('_sqlite_migrations', '_migrations')"
        )
    assert applied == [name for name in ALL_MIGRATIONS if name not in OLD_STORES[commit]]
    assert sorted(names) == ALL_MIGRATIONS
    assert carried == recorded_at  # the old record, carried over as it was
    assert old_tables == []
    after = sqlite_rows(old)
    assert kept(before, after) == before
    assert_representative_rows(after)
    with sqlite_tx(fresh) as db:
        apply_migrations(db)
    assert sqlite_schema(old) == sqlite_schema(fresh)


@pytest.mark.parametrize("commit", sorted(OLD_STORES))
def test_a_migrated_old_sqlite_store_takes_the_newest_rows(commit: str, tmp_path: Path) -> None:
    """The columns and tables of the migrations it lacked exist and take rows."""
    sqlite_store_from(commit, tmp_path / "old.db")
    with sqlite_tx(tmp_path / "old.db") as db:
        apply_migrations(db)
        db.execute(
            "INSERT INTO money_events (event_id, event_type, kind, verdict, reason, received_at)"
            " VALUES ('ev-1', 'payment_refunded', 'refund', 'hold', 'test', 0)"
        )
        db.execute("UPDATE subscriptions SET access_hold = 'ev-1' WHERE subscription_id = 'sub-1'")
        held = db.select_one(
            "SELECT access_hold FROM subscriptions WHERE subscription_id = 'sub-1'"
        )
    assert held == {"access_hold": "ev-1"}


# --- both backends --------------------------------------------------------------------------


@contextlib.contextmanager
def runner_connection(url: str) -> Iterator[Tx]:
    if url.startswith("sqlite:///"):
        with sqlite_tx(Path(url.removeprefix("sqlite:///"))) as db:
            yield db
    else:
        with pg_admin.connect(url) as tx:
            yield tx


def test_a_fresh_store_records_every_migration_once_and_a_second_run_applies_nothing(
    empty_store_url: str,
) -> None:
    with runner_connection(empty_store_url) as tx:
        first = apply_migrations(tx)
        second = apply_migrations(tx)
        names = [r["name"] for r in tx.select_all("SELECT name FROM broker_migrations")]
    assert first == ALL_MIGRATIONS
    assert second == []
    assert sorted(names) == ALL_MIGRATIONS  # each once: the name is the table's key


# --- PostgreSQL -----------------------------------------------------------------------------


def pg_store_from(commit: str, url: str) -> None:
    """Load the plain-SQL dump on a connection of its own (it empties ``search_path``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((FIXTURES / f"postgresql-{commit}.sql").read_text().encode())


def pg_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    with pg_admin.connect(url) as tx:
        tables = [
            row["table_name"]
            for row in tx.select_all(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            if row["table_name"] not in BOOKKEEPING | {"broker_write_lock"}
        ]
        return {table: _sorted(tx.select_all(f"SELECT * FROM {table}")) for table in tables}  # noqa: S608


def pg_schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns (with types, defaults, identity), indexes and constraints of the public schema."""
    queries = {
        "columns": "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,"
        " column_default, is_identity FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' ORDER BY indexname",
        "constraints": "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid)"
        " AS def FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY conname",
    }
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}


@pytest.mark.postgresql
@pytest.mark.parametrize("commit", sorted(OLD_STORES))
def test_an_old_postgresql_store_migrates_forward_keeping_every_row(
    commit: str, postgres_url: str, migrated_postgres_url: str
) -> None:
    pg_store_from(commit, postgres_url)
    before = pg_rows(postgres_url)
    with pg_admin.connect(postgres_url) as tx:
        applied = migrate_postgres(tx)
        names = [r["name"] for r in tx.select_all("SELECT name FROM broker_migrations")]
    assert applied == [name for name in ALL_MIGRATIONS if name not in OLD_STORES[commit]]
    assert sorted(names) == ALL_MIGRATIONS
    after = pg_rows(postgres_url)
    assert kept(before, after) == before
    assert_representative_rows(after)
    assert pg_schema(postgres_url) == pg_schema(migrated_postgres_url)


@pytest.mark.postgresql
def test_two_postgresql_runners_at_once_apply_each_migration_once(postgres_url: str) -> None:
    """Both start together on an empty database; the advisory lock lets one apply every
    migration while the other waits, then finds nothing left to do."""
    start = threading.Barrier(2, timeout=30)
    results: list[list[str]] = []

    def run() -> None:
        with pg_admin.connect(postgres_url) as tx:
            start.wait()
            results.append(apply_migrations(tx))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    assert sorted(results, key=len) == [[], ALL_MIGRATIONS]
    with psycopg.connect(postgres_url) as conn:
        count = conn.execute("SELECT count(*) FROM broker_migrations").fetchone()
    assert count == (len(ALL_MIGRATIONS),)


def test_an_up_to_date_store_is_migrated_without_writing(empty_store_url: str) -> None:
    """A store whose disk turned read-only (or a read-only PostgreSQL) must still open when
    nothing is pending, so that it can answer 503 on writes rather than not start at all."""
    with runner_connection(empty_store_url) as tx:
        apply_migrations(tx)
    if empty_store_url.startswith("sqlite:///"):
        with sqlite_tx(Path(empty_store_url.removeprefix("sqlite:///"))) as db:
            db.execute("PRAGMA query_only = ON")  # every write, BEGIN IMMEDIATE too, refused
            assert apply_migrations(db) == []
    else:
        with pg_admin.connect(empty_store_url) as tx:
            tx.execute("SET default_transaction_read_only = on")
            assert apply_migrations(tx) == []


def test_the_runner_makes_the_write_lock_table_the_engine_takes() -> None:
    """The runner repeats the engine's name for it (importing it would load psycopg on SQLite)."""
    from broker.store.engine import postgres
    from broker.store.migrations import runner

    assert runner.WRITE_LOCK_TABLE == postgres.WRITE_LOCK_TABLE
