"""The store: group commit folds concurrent writes into one transaction, a failing job rolls back
alone, and nothing is reported written unless it was committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from broker.errors import StoreError
from broker.store.engine.sqlite import SqliteStore, backup
from broker.store.engine.tx import Dialect
from broker.store.migrations import SCHEMA
from broker.store.opening import sqlite_store
from tests.support.store import held_group, insert_user, users


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = sqlite_store(tmp_path / "broker.db")
    await opened.open()
    yield opened
    await opened.close()


async def test_concurrent_writes_share_one_transaction(store: SqliteStore):
    before = store.stats.transactions
    results = await held_group(store, [insert_user(str(n)) for n in range(20)])
    assert results == [str(n) for n in range(20)]
    assert store.stats.transactions - before == 2  # the blocker's group, then all twenty
    assert store.stats.largest_group >= 20
    assert await users(store) == sorted(str(n) for n in range(20))


async def test_a_failing_job_rolls_back_alone(store: SqliteStore):
    def half_then_fail(db: Any) -> None:
        insert_user("half")(db)
        raise ValueError("refused")

    results = await held_group(store, [insert_user("a"), half_then_fail, insert_user("b")])
    assert results[0] == "a"
    assert isinstance(results[1], ValueError)
    assert results[2] == "b"
    assert await users(store) == ["a", "b"]


async def test_a_job_that_ends_the_transaction_still_rolls_back_alone(store: SqliteStore):
    """If a job's error ends the whole transaction, the earlier jobs of its group went with it:
    they run again without the failed job, and only then are they reported as written."""

    def end_transaction(db: Any) -> None:
        db.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    results = await held_group(store, [insert_user("a"), end_transaction, insert_user("b")])
    assert results[0] == "a"
    assert isinstance(results[1], sqlite3.OperationalError)
    assert results[2] == "b"
    assert await users(store) == ["a", "b"]


async def test_writes_survive_closing_and_reopening(tmp_path: Path):
    first = sqlite_store(tmp_path / "broker.db")
    await first.open()
    await first.write(insert_user("kept"))
    await first.close()
    second = sqlite_store(tmp_path / "broker.db")
    await second.open()
    try:
        assert await users(second) == ["kept"]
        assert await applied_migrations(second) == ALL_MIGRATIONS  # each applied once
    finally:
        await second.close()


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


async def applied_migrations(store: SqliteStore) -> list[str]:
    return await store.read(
        lambda db: [
            r["name"] for r in db.select_all("SELECT name FROM broker_migrations ORDER BY name")
        ]
    )


def test_the_schema_lists_every_migration_once_in_order() -> None:
    assert [migration.name for migration in SCHEMA] == ALL_MIGRATIONS


def database_from_the_old_runner(path: Path, upto: int) -> None:
    """A database as the broker's former runner left it: its schema through migration ``upto``
    (1 or 2) and its own ``_migrations`` record, with one user in it. The schema is the shipped
    migrations' own SQL, which is never edited once shipped."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(  # the former runner's table, as it created it
        "CREATE TABLE _migrations "
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    shipped = [(1, "initial schema"), (2, "audit log and checkouts")]
    for number, name in shipped[:upto]:
        for statement in SCHEMA[number - 1].sql(Dialect.SQLITE):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)",
            [number, name, 1763700000.0],
        )
    conn.execute(
        "INSERT INTO users (zuid, zgid, first_seen_at, last_seen_at) VALUES ('old', '1', 0, 0)"
    )
    conn.close()


@pytest.mark.parametrize("upto", [1, 2])
async def test_a_database_made_by_the_old_runner_upgrades_without_reapplying(
    tmp_path: Path, upto: int
) -> None:
    database_from_the_old_runner(tmp_path / "broker.db", upto)
    store = sqlite_store(tmp_path / "broker.db")
    await store.open()  # would fail with "table webhook_events already exists" if re-applied
    try:
        assert await applied_migrations(store) == ALL_MIGRATIONS
        assert await users(store) == ["old"]
        await store.write(insert_user("new"))  # the later migrations' tables and columns exist
        columns = await store.read(
            lambda db: [
                r["name"] for r in db.select_all("SELECT name FROM pragma_table_info('users')")
            ]
        )
        assert "verified_by" in columns
        tables = await store.read(
            lambda db: db.select_all("SELECT name FROM sqlite_master WHERE name = 'landing_nonces'")
        )
        assert tables == [{"name": "landing_nonces"}]
    finally:
        await store.close()
    again = sqlite_store(tmp_path / "broker.db")
    await again.open()  # the old record was carried over once and dropped: nothing runs twice
    try:
        assert await applied_migrations(again) == ALL_MIGRATIONS
        tables = await again.read(
            lambda db: db.select_all(
                "SELECT name FROM sqlite_master WHERE name IN ('_migrations', '_sqlite_migrations')"
            )
        )
        assert tables == []
    finally:
        await again.close()


async def test_unwritable_location_is_a_clear_store_error(tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    broken = sqlite_store(blocked / "broker.db")
    with pytest.raises((StoreError, OSError)):
        await broken.open()


async def test_backup_copies_a_live_database(store: SqliteStore, tmp_path: Path):
    await store.write(insert_user("copied"))
    destination = tmp_path / "copy.db"
    backup(store.path, destination)
    with sqlite3.connect(destination) as copy:
        assert copy.execute("SELECT zuid FROM users").fetchall() == [("copied",)]
    with pytest.raises(FileExistsError):
        backup(store.path, destination)


async def test_an_urgent_write_goes_before_queued_writes_in_its_own_transaction(store: SqliteStore):
    """A platform answer (urgent) queued behind ingest jobs is committed first, alone, so a crash
    during the ingest group cannot lose it."""
    ran: list[str] = []
    started, gate = threading.Event(), threading.Event()

    def block(db: Any) -> None:
        started.set()
        gate.wait(5)

    def noted(name: str) -> Any:
        def job(db: Any) -> str:
            ran.append(name)
            return insert_user(name)(db)

        return job

    blocker = asyncio.ensure_future(store.write(block))
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    before = (store.stats.transactions, store.stats.urgent_transactions)
    queued = [asyncio.ensure_future(store.write(noted(n))) for n in ("ingest-1", "ingest-2")]
    urgent = asyncio.ensure_future(store.write(noted("answer"), urgent=True))
    await asyncio.sleep(0)  # the futures' put() calls run before the gate opens
    gate.set()
    await blocker
    assert await asyncio.gather(urgent, *queued) == ["answer", "ingest-1", "ingest-2"]
    assert ran == ["answer", "ingest-1", "ingest-2"]
    after = (store.stats.transactions, store.stats.urgent_transactions)
    # The blocker's transaction (counted once it commits), the answer's alone, then ingest's.
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)
