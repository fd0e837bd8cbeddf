"""A full or read-only disk: ``/readyz`` says 503, a webhook gets 503 with Retry-After (Zoho
retries it), never a 500, and both recover without a restart once the disk is back. A group
commit the full disk refuses fails every write waiting on it, and the store commits again after.

These are real conditions: a small tmpfs filled to the last block, and a read-only bind mount.
Mounting needs root (CI runs as root); elsewhere the tests are skipped with a note, and under CI
(the CI variable set) they fail instead, so a CI that lost its privileges cannot pass quietly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from broker.errors import StoreError
from broker.simulators.platform import PlatformSimulator
from broker.store.opening import sqlite_store
from broker.web.appkeys import refusals_key, worker_key
from tests.conftest import db_rows, post_event
from tests.support.basics import (
    DECEMBER_FIRST_NOON,
    ManualClock,
    ManualTime,
    eventually,
    subscription_event,
)
from tests.support.disks import fill, mount, mounted_small_disk, umount
from tests.support.refusals import timer_naps
from tests.support.store import held_group, insert_user, users

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_small_disk(tmp_path) as disk:
        yield disk


async def readiness(client: Client) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, await response.json()


async def assert_refused_for_now(client: Client, event: dict[str, Any], reason: str) -> None:
    """A 503 that tells Zoho to retry, says why, and leaves a structured log line."""
    with capture_logs() as logs:
        response = await post_event(client, event)
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    body = await response.json()
    assert body["error"] == "store_unavailable"
    assert reason in body["message"]
    refused = [line for line in logs if line["event"] == "http.refused"]
    assert refused, logs
    assert refused[0]["status"] == 503
    assert refused[0]["error"] == "store_unavailable"


async def test_full_disk_makes_readyz_and_webhooks_503_until_space_is_freed(
    make_broker: Any, small_disk: Path
) -> None:
    client = await make_broker(store={"path": small_disk / "broker.db"})
    assert (await readiness(client))[0] == 200

    filler = fill(small_disk)
    status, body = await readiness(client)
    assert status == 503
    assert body["checks"]["store"].startswith("failing")
    event = subscription_event()
    await assert_refused_for_now(client, event, "full")

    filler.unlink()
    status, body = await readiness(client)
    assert (status, body["checks"]["store"]) == (200, "ok")
    response = await post_event(client, event)  # Zoho's retry of the same event
    assert response.status == 200
    assert (await response.json())["status"] == "accepted"


@pytest.fixture
def read_only_store(small_disk: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A broker database reached through a read-only bind mount of ``small_disk``.

    The database is created through the writable mount, and a connection kept open there holds
    its WAL files, as a running broker's other process would. Yields (bind mount, database).
    """
    setup = sqlite3.connect(small_disk / "broker.db", isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE keep (x)")
    view = tmp_path / "view"
    view.mkdir()
    mount("--bind", str(small_disk), str(view))
    try:
        mount("-o", "remount,bind,ro", str(view))
        yield view, view / "broker.db"
    finally:
        setup.close()
        umount(view)


async def test_read_only_database_makes_readyz_and_webhooks_503_until_writable(
    make_broker: Any, read_only_store: tuple[Path, Path], small_disk: Path
) -> None:
    # The broker's schema is in place before the disk turns read-only: a broker ran on it.
    view, db = read_only_store
    first = await make_broker(store={"path": small_disk / db.name})
    await first.close()

    client = await make_broker(store={"path": db})
    status, body = await readiness(client)
    assert status == 503
    assert body["checks"]["store"].startswith("failing")
    event = subscription_event()
    await assert_refused_for_now(client, event, "read-only")

    mount("-o", "remount,bind,rw", str(view))
    status, body = await readiness(client)
    assert (status, body["checks"]["store"]) == (200, "ok")
    response = await post_event(client, event)
    assert response.status == 200
    assert (await response.json())["status"] == "accepted"


async def test_a_commit_the_full_disk_refuses_fails_every_write_of_its_group_and_the_store_recovers(
    small_disk: Path,
) -> None:
    """The group's statements fit in SQLite's page cache, so only COMMIT needs the disk: all
    twenty writers waiting on it get a StoreError, none is reported written, and the same store
    commits again once space is freed (no restart)."""
    store = sqlite_store(small_disk / "broker.db")
    await store.open()
    try:
        # Grow the write-ahead log first, so the next commit appends to its end (new blocks).
        for n in range(30):
            await store.write(insert_user(f"before-{n:02d}"))
        filler = fill(small_disk)
        with capture_logs() as logs:
            results = await held_group(store, [insert_user(f"group-{n:02d}") for n in range(20)])
        assert [type(result) for result in results] == [StoreError] * 20
        assert {result.message for result in results} == {"the database disk is full"}
        [failed] = [line for line in logs if line["event"] == "store.commit_failed"]
        assert (failed["error"], failed["jobs"]) == ("SQLITE_FULL", 20)
        assert not [line for line in logs if line["event"] == "store.write_failed"]

        filler.unlink()
        assert await store.write(insert_user("after")) == "after"
        assert await users(store) == ["after", *(f"before-{n:02d}" for n in range(30))]
    finally:
        await store.close()


async def test_worker_survives_a_claim_the_full_disk_refuses_and_delivers_after(
    make_broker: Any, small_disk: Path, simulator: PlatformSimulator
) -> None:
    """Claiming writes a lease; on a full disk its commit fails. The worker logs it, keeps
    going round, and the delivery goes out once space is freed, without a restart."""
    clock = ManualClock(DECEMBER_FIRST_NOON)
    client = await make_broker(clock=clock, store={"path": small_disk / "broker.db"})
    simulator.fail_next(1, status=503)  # the first try fails; the retry waits on our clock
    assert (await post_event(client, subscription_event())).status == 200

    async def retry_scheduled() -> bool:
        rows = await db_rows(client, "SELECT state, attempts FROM deliveries")
        return [(row["state"], row["attempts"]) for row in rows] == [("pending", 1)]

    await eventually(retry_scheduled, message="the first attempt recorded, a retry scheduled")
    filler = fill(small_disk)
    with capture_logs() as logs:
        clock.advance(60.0)  # the retry falls due
        client.app[worker_key].wake()
        await eventually(
            lambda: any(line["event"] == "delivery.claim_failed" for line in logs),
            message="the worker's claim refused by the full disk",
        )
    assert client.app[worker_key].alive
    assert simulator.applied == []

    filler.unlink()
    client.app[worker_key].wake()
    await simulator.wait_until(lambda s: len(s.applied) == 1)

    async def done() -> bool:
        rows = await db_rows(client, "SELECT state, attempts FROM deliveries")
        return [(row["state"], row["attempts"]) for row in rows] == [("done", 2)]

    await eventually(done, message="the delivery done on its second attempt")


async def test_refused_counts_the_read_only_store_cannot_take_are_written_the_next_interval(
    make_broker: Any, read_only_store: tuple[Path, Path], small_disk: Path
) -> None:
    view, db = read_only_store
    first = await make_broker(store={"path": small_disk / db.name})
    await first.close()
    time = ManualTime(DECEMBER_FIRST_NOON)
    client = await make_broker(store={"path": db}, clock=time.clock, sleep=time.sleep)
    tally = client.app[refusals_key]
    assert (await post_event(client, subscription_event(), key="wrong")).status == 401

    with capture_logs() as logs:
        await eventually(lambda: timer_naps(time) != [], message="the timer napping")
        time.advance_to(timer_naps(time)[0])
        await eventually(
            lambda: any(line["event"] == "webhooks.refusals_flush_failed" for line in logs),
            message="the failed write said",
        )
    [failed] = [line for line in logs if line["event"] == "webhooks.refusals_flush_failed"]
    assert tally.flushes == 1
    assert (failed["log_level"], failed["pending"]) == ("warning", 1)
    assert "read-only" in failed["error"]
    assert tally.pending(None, None) == {"zapikey": 1}  # kept, still on the console

    mount("-o", "remount,bind,rw", str(view))
    await eventually(lambda: timer_naps(time) != [], message="the timer napping again")
    time.advance_to(timer_naps(time)[0])

    async def written() -> bool:
        rows = await db_rows(client, "SELECT reason, count FROM webhook_refusals")
        return rows == [{"reason": "zapikey", "count": 1}]

    await eventually(written, message="the kept counts written")
    assert tally.flushes == 2
    assert tally.pending(None, None) == {}
