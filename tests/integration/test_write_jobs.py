"""One way to run a write job, on SQLite and on PostgreSQL, for the running store and for the
operator's commands alike: a failing job rolls back alone (the rest of its group commits), a
lost race runs the group again and its effect lands once, and a command's write takes the
running brokers' write lock and goes through the same loop (``engine/writer.py``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from broker.cli.store_target import open_existing, parse_target, run_write
from broker.config import StoreSettings
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Dialect, Tx
from broker.store.opening import open_store
from tests.support.basics import eventually
from tests.support.store import insert_user, users


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[StoreBackend]:
    opened = open_store(StoreSettings(url=store_url))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


class HeldWriter:
    """Keeps the store's writer inside a job of its own (holding the write lock) until
    ``release``: jobs queued meanwhile are committed as one group after it."""

    def __init__(self, store: StoreBackend, first: Callable[[Tx], Any] | None = None):
        self._started, self._gate = threading.Event(), threading.Event()

        def block(db: Tx) -> None:
            if first is not None:
                first(db)
            self._started.set()
            assert self._gate.wait(10), "the test never released the writer"

        self.blocker = asyncio.ensure_future(store.write(block))

    async def holding(self) -> None:
        assert await asyncio.get_running_loop().run_in_executor(None, self._started.wait, 10)

    async def release(self) -> None:
        self._gate.set()
        await self.blocker


async def test_a_failing_job_rolls_back_alone_even_when_its_error_ended_the_transaction(
    store: StoreBackend,
) -> None:
    """One group: a good job, a job refused by the database (a duplicate key: on PostgreSQL
    that ends the whole transaction), a job that ends the transaction itself and then raises,
    and a good job. The two good jobs commit, each failing job gets its own error."""

    def duplicate(db: Tx) -> None:
        insert_user("a")(db)

    def ends_the_transaction(db: Tx) -> None:
        insert_user("never")(db)
        db.execute("ROLLBACK")
        raise LookupError("the job's own error")

    held = HeldWriter(store)
    await held.holding()
    before = store.stats.transactions
    pending = [
        asyncio.ensure_future(store.write(job))
        for job in (insert_user("a"), duplicate, ends_the_transaction, insert_user("b"))
    ]
    await asyncio.sleep(0)  # each write() queues its job before the writer is released
    await held.release()
    results = await asyncio.gather(*pending, return_exceptions=True)

    assert results[0] == "a"
    assert type(results[1]).__name__ in {"IntegrityError", "UniqueViolation"}
    assert isinstance(results[2], LookupError)
    assert results[3] == "b"
    assert await users(store) == ["a", "b"]
    assert store.stats.transactions - before == 2  # the held job's group, then these four


# --- a lost race (PostgreSQL) --------------------------------------------------------------------


def racing_job(url: str, runs: list[int]) -> Callable[[Tx], int]:
    """A job that loses a real race on its first run: after it read the ``counter`` user, a
    second connection adds 100 to that row and commits, so the job's own update of it is
    refused by the server (SQLSTATE 40001). Run again, it reads 100 and writes 101."""

    def job(db: Tx) -> int:
        runs.append(1)
        row = db.select_one("SELECT last_seen_at FROM users WHERE zuid = 'counter'")
        assert row is not None
        if len(runs) == 1:
            with psycopg.connect(url, autocommit=True) as other:
                other.execute(
                    "UPDATE users SET last_seen_at = last_seen_at + 100 WHERE zuid = 'counter'"
                )
        db.execute(
            "UPDATE users SET last_seen_at = ? WHERE zuid = 'counter'", [row["last_seen_at"] + 1]
        )
        insert_user("once")(db)
        return int(row["last_seen_at"]) + 1

    return job


async def counter_and_once(store: StoreBackend) -> tuple[int, int]:
    def read(db: Tx) -> tuple[int, int]:
        counter = db.select_one("SELECT last_seen_at FROM users WHERE zuid = 'counter'")
        once = db.select_one("SELECT count(*) AS n FROM users WHERE zuid = 'once'")
        assert counter is not None
        assert once is not None
        return int(counter["last_seen_at"]), int(once["n"])

    return await store.read(read)


@pytest.mark.postgresql
async def test_a_group_that_lost_a_race_runs_again_and_its_effect_lands_once(
    migrated_postgres_url: str,
) -> None:
    store = open_store(StoreSettings(url=migrated_postgres_url))
    await store.open()
    try:
        await store.write(insert_user("counter"))
        runs: list[int] = []
        retries_before = store.stats.retries
        written = await store.write(racing_job(migrated_postgres_url, runs))
        assert written == 101
        assert len(runs) == 2
        assert store.stats.retries - retries_before == 1
        assert await counter_and_once(store) == (101, 1)
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_a_command_whose_write_lost_a_race_runs_it_again_and_it_lands_once(
    migrated_postgres_url: str,
) -> None:
    store = open_store(StoreSettings(url=migrated_postgres_url))
    await store.open()
    try:
        await store.write(insert_user("counter"))
        runs: list[int] = []
        with open_existing(parse_target(migrated_postgres_url)) as db:
            written = run_write(db, racing_job(migrated_postgres_url, runs))
        assert written == 101
        assert len(runs) == 2
        assert await counter_and_once(store) == (101, 1)
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_a_write_that_keeps_losing_races_is_given_up_with_nothing_written(
    migrated_postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The re-runs are bounded: a job that loses every run (another connection always changes
    the row it read) ends the command with a 503's reason, and none of its runs is written."""
    store = open_store(StoreSettings(url=migrated_postgres_url))
    await store.open()
    try:
        await store.write(insert_user("counter"))
        runs: list[int] = []

        def always_racing(db: Tx) -> int:
            runs.clear()  # so the racing job interferes on every run
            return racing_job(migrated_postgres_url, runs)(db)

        with open_existing(parse_target(migrated_postgres_url)) as db, pytest.raises(SystemExit):
            run_write(db, always_racing)
        assert capsys.readouterr().err.startswith(
            "the database is too busy with other replicas' writes: nothing was changed; "
        )
        counter, once = await counter_and_once(store)
        assert once == 0
        assert counter % 100 == 0  # only the other connection's additions, never the job's +1
        assert counter >= 100 * 2  # it was run again, more than once
    finally:
        await store.close()


# --- the operator's commands write through the same loop ------------------------------------------


async def test_a_command_write_waits_for_the_running_brokers_writer_then_succeeds(
    store: StoreBackend, store_url: str
) -> None:
    """While the broker's writer holds the write lock in a group, a command's write waits for
    it, then runs on what that group committed."""
    held = HeldWriter(store, first=insert_user("broker-row"))
    await held.holding()

    def command() -> int:
        def job(tx: Tx) -> int:
            insert_user("command-row")(tx)
            seen = tx.select_one("SELECT count(*) AS n FROM users WHERE zuid = 'broker-row'")
            assert seen is not None
            return int(seen["n"])

        with open_existing(parse_target(store_url)) as db:
            return run_write(db, job)

    written = asyncio.get_running_loop().run_in_executor(None, command)
    if store.dialect is Dialect.POSTGRESQL:
        # Seen from the server: the command's transaction waits for broker_write_lock. (SQLite
        # shows no waiter; there BEGIN IMMEDIATE waits inside busy_timeout.)
        def waiting_for_the_lock() -> bool:
            with psycopg.connect(store_url, autocommit=True) as admin:
                row = admin.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " WHERE c.relname = 'broker_write_lock' AND NOT l.granted"
                ).fetchone()
            return row is not None and row[0] == 1

        await eventually(waiting_for_the_lock, message="the command waiting for the write lock")
    assert not written.done()
    await held.release()
    assert await written == 1  # it ran after the broker's group committed, and saw its row
    assert await users(store) == ["broker-row", "command-row"]


async def test_a_command_job_that_raises_leaves_nothing_written(
    store: StoreBackend, store_url: str
) -> None:
    def job(tx: Tx) -> None:
        insert_user("half-done")(tx)
        raise LookupError("no such delivery")

    with open_existing(parse_target(store_url)) as db, pytest.raises(LookupError):
        run_write(db, job)
    assert await users(store) == []


async def test_a_command_write_the_database_refuses_exits_saying_nothing_was_changed(
    store: StoreBackend, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database that takes no writes (here: this connection made read-only) is the
    operator's to fix: the command says so and exits 1, no traceback, nothing written."""
    with open_existing(parse_target(store_url)) as db:
        if db.dialect is Dialect.POSTGRESQL:
            db.execute("SET default_transaction_read_only = on")
        else:
            db.execute("PRAGMA query_only = ON")
        with pytest.raises(SystemExit) as exited:
            run_write(db, insert_user("refused"))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("the database is read-only: nothing was changed; ")
    assert await users(store) == []
