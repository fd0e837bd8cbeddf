"""The store: group commit folds concurrent writes into one transaction, a failing job rolls back
alone, and nothing is reported written unless it was committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from broker.errors import StoreError
from broker.store.engine.sqlite import Store, backup
from broker.store.migrations import SCHEMA, _m001_initial, _m002_page


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = Store(tmp_path / "broker.db")
    await opened.open()
    yield opened
    await opened.close()


def insert_user(zuid: str) -> Any:
    def job(db: Any) -> str:
        db.execute(
            "INSERT INTO users (zuid, zgid, first_seen_at, last_seen_at) VALUES (?, '1', 0, 0)",
            [zuid],
        )
        return zuid

    return job


async def users(store: Store) -> list[str]:
    return await store.read(
        lambda db: [r["zuid"] for r in db.select_all("SELECT zuid FROM users ORDER BY zuid")]
    )


async def held_group(store: Store, jobs: list[Any]) -> list[Any]:
    """Submit ``jobs`` while the writer is busy, so they are committed as one group."""
    started, gate = threading.Event(), threading.Event()

    def block(db: Any) -> None:
        started.set()
        gate.wait(5)

    blocker = asyncio.ensure_future(store.write(block))
    # Wait (off the loop) until the writer is inside the blocker, then queue the group.
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    pending = [asyncio.ensure_future(store.write(job)) for job in jobs]
    await asyncio.sleep(0)  # the futures' put() calls run before the gate opens
    gate.set()
    await blocker
    return await asyncio.gather(*pending, return_exceptions=True)


async def test_concurrent_writes_share_one_transaction(store: Store):
    before = store.stats.transactions
    results = await held_group(store, [insert_user(str(n)) for n in range(20)])
    assert results == [str(n) for n in range(20)]
    assert store.stats.transactions - before == 2  # the blocker's group, then all twenty
    assert store.stats.largest_group >= 20
    assert await users(store) == sorted(str(n) for n in range(20))


async def test_a_failing_job_rolls_back_alone(store: Store):
    def half_then_fail(db: Any) -> None:
        insert_user("half")(db)
        raise ValueError("refused")

    results = await held_group(store, [insert_user("a"), half_then_fail, insert_user("b")])
    assert results[0] == "a"
    assert isinstance(results[1], ValueError)
    assert results[2] == "b"
    assert await users(store) == ["a", "b"]


async def test_a_job_that_ends_the_transaction_fails_the_jobs_it_rolled_back(store: Store):
    """If a job's error ends the whole transaction, earlier jobs of its group were rolled back
    with it: they must be reported as failed, never as written."""

    def end_transaction(db: Any) -> None:
        db.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    results = await held_group(store, [insert_user("a"), end_transaction, insert_user("b")])
    assert isinstance(results[0], StoreError)
    assert isinstance(results[1], sqlite3.OperationalError)
    assert results[2] == "b"
    assert await users(store) == ["b"]


async def test_writes_survive_closing_and_reopening(tmp_path: Path):
    first = Store(tmp_path / "broker.db")
    await first.open()
    await first.write(insert_user("kept"))
    await first.close()
    second = Store(tmp_path / "broker.db")
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
    "m011_retention_pruning",
]


async def applied_migrations(store: Store) -> list[str]:
    return await store.read(
        lambda db: [
            r["name"]
            for r in db.select_all(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = 'broker' ORDER BY id"
            )
        ]
    )


def test_the_schema_lists_every_migration_once_in_order() -> None:
    assert [name for _, name, _ in SCHEMA] == ALL_MIGRATIONS
    assert [number for number, _, _ in SCHEMA] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def database_from_the_old_runner(path: Path, upto: int) -> None:
    """A database as the broker's former runner left it: its schema through migration ``upto``
    (1 or 2) and its own ``_migrations`` record, with one user in it. The schema is the shipped
    migrations' own SQL, which is never edited once shipped."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(  # the former runner's table, as it created it
        "CREATE TABLE _migrations "
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    db = sqlite_utils.Database(conn)
    shipped = [(1, "initial schema", _m001_initial), (2, "audit log and checkouts", _m002_page)]
    for number, name, migrate in shipped[:upto]:
        migrate(db)
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
    store = Store(tmp_path / "broker.db")
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
    again = Store(tmp_path / "broker.db")
    await again.open()  # the bridge runs again on every start and records nothing twice
    try:
        assert await applied_migrations(again) == ALL_MIGRATIONS
    finally:
        await again.close()


async def test_unwritable_location_is_a_clear_store_error(tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    broken = Store(blocked / "broker.db")
    with pytest.raises((StoreError, OSError)):
        await broken.open()


async def test_backup_copies_a_live_database(store: Store, tmp_path: Path):
    await store.write(insert_user("copied"))
    destination = tmp_path / "copy.db"
    backup(store.path, destination)
    with sqlite3.connect(destination) as copy:
        assert copy.execute("SELECT zuid FROM users").fetchall() == [("copied",)]
    with pytest.raises(FileExistsError):
        backup(store.path, destination)


async def test_an_urgent_write_goes_before_queued_writes_in_its_own_transaction(store: Store):
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
