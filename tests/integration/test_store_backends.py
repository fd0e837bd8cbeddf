"""What every store promises, on SQLite and on PostgreSQL alike (the ``store_url`` fixture runs
each test on both): a failing job rolls back alone, committed writes outlive the process, the
schema is migrated once, and times keep their precision."""

from __future__ import annotations

import asyncio

from broker.config import StoreSettings
from broker.store.engine.tx import Tx
from broker.store.opening import open_store
from tests.support.store import insert_user, users


def failing_job(db: Tx) -> None:
    insert_user("rolled-back")(db)
    raise LookupError("the job's own error")


async def test_a_failing_job_rolls_back_alone_and_hands_back_its_error(store_url: str) -> None:
    store = open_store(StoreSettings(url=store_url))
    await store.open()
    try:
        results = await asyncio.gather(
            store.write(insert_user("a")),
            store.write(failing_job),
            store.write(insert_user("b")),
            return_exceptions=True,
        )
        assert results[0] == "a"
        assert isinstance(results[1], LookupError)
        assert results[2] == "b"
        assert await users(store) == ["a", "b"]
    finally:
        await store.close()


async def test_writes_survive_closing_and_reopening_and_migrations_run_once(
    store_url: str,
) -> None:
    first = open_store(StoreSettings(url=store_url))
    await first.open()
    await first.write(insert_user("kept"))
    await first.close()
    second = open_store(StoreSettings(url=store_url))
    await second.open()  # would fail ("table already exists") if a migration ran again
    try:
        assert await users(second) == ["kept"]
    finally:
        await second.close()


async def test_a_unix_time_keeps_its_microseconds(store_url: str) -> None:
    """PostgreSQL's REAL is a 4-byte float (a 2026 epoch in it is off by about a minute): the
    schema's REAL columns must be DOUBLE PRECISION there."""
    store = open_store(StoreSettings(url=store_url))
    await store.open()
    try:
        moment = 1_795_000_123.456789
        await store.write(
            lambda db: db.execute(
                "INSERT INTO users (zuid, zgid, first_seen_at, last_seen_at)"
                " VALUES ('t', '1', ?, ?)",
                [moment, moment],
            )
        )
        row = await store.read(lambda db: db.select_one("SELECT first_seen_at FROM users"))
        assert row == {"first_seen_at": moment}
    finally:
        await store.close()
