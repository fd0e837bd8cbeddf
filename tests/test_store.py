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
from broker.store.database import Store, backup
from broker.store.migrations import MIGRATIONS


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
        lambda db: [r["zuid"] for r in db.query("SELECT zuid FROM users ORDER BY zuid")]
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
        db.conn.execute("ROLLBACK")
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
        applied = await second.read(
            lambda db: [r["id"] for r in db.query("SELECT id FROM _migrations ORDER BY id")]
        )
        assert applied == [number for number, _, _ in MIGRATIONS]  # each applied once
    finally:
        await second.close()


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
