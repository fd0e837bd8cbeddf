"""The store goes away while a platform call is on the wire: the answer is kept in the process
that made the call and recorded once the store is back, so the platform gets the call once.

Both backends, with real outages: SQLite on a full disk (a small tmpfs, as in
tests/system/test_disk_faults.py), PostgreSQL behind a TCP proxy that is cut and restored. The
broker's clock is moved by hand past the delivery's lease, the moment a lease that was left to run
out would be taken back and the call sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from broker.config import StoreSettings
from broker.core.mapping import PlatformState
from broker.errors import StoreError
from broker.simulators.platform import PlatformSimulator
from broker.store.engine.tx import Tx
from broker.store.opening import open_store
from broker.store.outbox import claim_due
from broker.web.appkeys import worker_key
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import DECEMBER_FIRST_NOON, ManualTime, eventually, subscription_event
from tests.support.disks import fill, mounted_small_disk
from tests.support.metrics import parse, value
from tests.support.tcp_proxy import TcpProxy

Client = TestClient[web.Request, web.Application]

LEASE_SECONDS = 30.0
# The platform's answer may take a while on a busy machine; well inside the lease.
TIMING = {
    "delivery": {"lease_seconds": LEASE_SECONDS},
    "platform": {"request_timeout_seconds": 10.0},
}
STORE_FAILURES = {"store.commit_failed", "store.unavailable", "store.write_failed"}


async def outage_during_a_call(
    client: Client,
    simulator: PlatformSimulator,
    time: ManualTime,
    *,
    break_store: Callable[[], Awaitable[None]],
    mend_store: Callable[[], Awaitable[None]],
) -> list[dict[str, Any]]:
    """Hold the Add on the wire, break the store, let the platform apply the Add (its record is
    refused), move the clock past the lease, mend the store, and run the worker until the
    delivery is done. Returns the log lines from the outage on."""
    simulator.hang()
    assert (await post_event(client, subscription_event())).status == 200
    await simulator.wait_until(lambda s: s.hanging == 1)

    with capture_logs() as logs:
        await break_store()
        simulator.release()
        await simulator.wait_until(lambda s: len(s.applied) == 1)
        await eventually(
            lambda: any(line["event"] in STORE_FAILURES for line in logs),
            within=10,
            message="the store refusing the answer's record",
        )
        time.advance_to(time.now + LEASE_SECONDS + 1)  # the lease ran out on the broker's clock
        await mend_store()
        await _run_until_done(client, time)
    return logs


async def _run_until_done(client: Client, time: ManualTime) -> None:

    async def done() -> bool:
        for deadline in time.naps:  # let every nap (the worker's, a record's backoff) end
            time.advance_to(max(deadline, time.now))
        client.app[worker_key].wake()
        try:
            rows = await db_rows(client, "SELECT state FROM deliveries")
        except StoreError:  # the pool is still reconnecting
            return False
        return [row["state"] for row in rows] == ["done"]

    await eventually(done, within=20, message="the delivery recorded as done")


async def assert_applied_once(
    client: Client,
    simulator: PlatformSimulator,
    logs: list[dict[str, Any]],
    *,
    must_retry: bool = True,
    replicas: Sequence[Client] = (),
) -> None:
    """One applied Add, one attempt recorded as the success it was, and the wait was said:
    the refused records logged only at failures 1, 2, 4, ..., then once when written.
    ``must_retry`` False: PostgreSQL's writer may instead hold the record in its queue until the
    database is back (it fails only the jobs of a transaction under way), so nothing is refused."""
    assert [(call.method, call.applied) for call in simulator.calls] == [("POST", True)]
    [row] = await db_rows(client, "SELECT state, attempts, uncertain FROM deliveries")
    assert row == {"state": "done", "attempts": 1, "uncertain": 0}
    [attempt] = await db_rows(client, "SELECT method, status, outcome FROM attempts")
    assert attempt == {"method": "POST", "status": 200, "outcome": "success"}

    failed = [line["failures"] for line in logs if line["event"] == "delivery.record_failed"]
    written = [line["failures"] for line in logs if line["event"] == "delivery.record_written"]
    if must_retry:
        assert failed, "the refused record was never logged"
    assert failed == [2**n for n in range(len(failed))], failed
    assert len(written) == (1 if failed else 0), written  # said once, when written
    assert not failed or written[0] >= failed[-1]
    retries = unrecorded = 0.0
    for each in replicas or [client]:  # whichever replica held the delivery counted
        samples = parse(await (await each.get("/metrics")).text())
        retries += value(samples, "broker_platform_answer_record_retries_total")
        unrecorded += value(samples, "broker_unrecorded_platform_answers")
    assert (retries, unrecorded) == (sum(written), 0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_small_disk(tmp_path) as disk:
        yield disk


async def test_a_full_disk_while_a_call_is_on_the_wire_applies_the_call_once(
    make_broker: BrokerFactory, simulator: PlatformSimulator, small_disk: Path
) -> None:
    time = ManualTime(DECEMBER_FIRST_NOON)
    client = await make_broker(
        clock=time.clock, sleep=time.sleep, store={"path": small_disk / "broker.db"}, **TIMING
    )
    filler: list[Path] = []

    async def full() -> None:
        filler.append(fill(small_disk))

    async def freed() -> None:
        filler[0].unlink()

    logs = await outage_during_a_call(client, simulator, time, break_store=full, mend_store=freed)
    await assert_applied_once(client, simulator, logs)


@pytest.mark.postgresql
async def test_a_database_outage_while_a_call_is_on_the_wire_applies_the_call_once(
    make_broker: BrokerFactory, simulator: PlatformSimulator, postgres_url: str
) -> None:
    split = urlsplit(postgres_url)
    proxy = TcpProxy(split.hostname or "127.0.0.1", split.port or 5432)
    await proxy.start()
    through_proxy = urlunsplit(split._replace(netloc=f"{split.username}@127.0.0.1:{proxy.port}"))
    time = ManualTime(DECEMBER_FIRST_NOON)
    client = await make_broker(
        clock=time.clock,
        sleep=time.sleep,
        store={"url": through_proxy, "connect_timeout_seconds": 1.0},
        **TIMING,
    )
    try:
        logs = await outage_during_a_call(
            client, simulator, time, break_store=proxy.cut, mend_store=proxy.start
        )
        await assert_applied_once(client, simulator, logs, must_retry=False)
    finally:
        await proxy.cut()


# --- leases across workers (replicas share the database) ----------------------------------------


def _one_pending_delivery(db: Tx) -> None:
    db.execute("INSERT INTO subscriptions (subscription_id, updated_at) VALUES ('9001', 0)")
    db.execute(
        "INSERT INTO deliveries (subscription_id, target_json, cause, state, created_at,"
        " next_attempt_at) VALUES ('9001', ?, 'test', 'pending', 0, 0)",
        [PlatformState(active=True, zgid="1", planid="1001").to_json()],
    )


def _claim(owner: str, now: float, **options: Any) -> Callable[[Tx], Any]:
    return partial(claim_due, owner=owner, now=now, lease_seconds=30.0, limit=5, **options)


async def test_a_lease_its_holder_renews_is_never_taken_back_by_another_worker(
    store_url: str,
) -> None:
    """Worker A holds delivery 1 (leased at 1000 for 30 s) through an outage. Once the store is
    back, B (still in its grace) leaves the expired lease alone; A's next pass renews it; after
    its grace, B finds nothing expired. Only a lease nobody renews is taken back."""
    store = open_store(StoreSettings(url=store_url))
    await store.open()
    try:
        await store.write(_one_pending_delivery)
        [held], _ = await store.write(_claim("A", 1000.0))
        lease = "SELECT state, lease_owner, lease_expires_at FROM deliveries"

        assert await store.write(_claim("B", 1040.0, take_back=False)) == ([], None)
        assert await store.read(lambda db: list(db.select_all(lease))) == [
            {"state": "in_flight", "lease_owner": "A", "lease_expires_at": 1030.0}
        ]
        await store.write(_claim("A", 1041.0, held={held.id}))
        assert await store.write(_claim("B", 1056.0)) == ([], None)
        assert await store.read(lambda db: list(db.select_all(lease))) == [
            {"state": "in_flight", "lease_owner": "A", "lease_expires_at": 1071.0}
        ]

        # A renews only past half its lease: at 1050 the lease (to 1071) is left as it is.
        await store.write(_claim("A", 1050.0, held={held.id}))
        [row] = await store.read(lambda db: list(db.select_all(lease)))
        assert row["lease_expires_at"] == 1071.0

        # A dies: nobody renews, and B takes the lease back once it has run out.
        [retaken], _ = await store.write(_claim("B", 1072.0))
        assert (retaken.id, retaken.uncertain, retaken.attempt) == (held.id, True, 2)
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_after_a_database_outage_another_replica_leaves_the_holders_lease_alone(
    make_broker: BrokerFactory, simulator: PlatformSimulator, postgres_url: str
) -> None:
    """Two replicas on one database. One holds the Add on the wire when the database goes away;
    the lease runs out during the outage. Once it is back, the other replica (within its grace)
    does not take the lease, and the holder records its answer: one applied call."""
    split = urlsplit(postgres_url)
    proxy = TcpProxy(split.hostname or "127.0.0.1", split.port or 5432)
    await proxy.start()
    through_proxy = urlunsplit(split._replace(netloc=f"{split.username}@127.0.0.1:{proxy.port}"))
    time = ManualTime(DECEMBER_FIRST_NOON)
    store = {"url": through_proxy, "connect_timeout_seconds": 1.0}
    replicas = [
        await make_broker(clock=time.clock, sleep=time.sleep, store=store, **TIMING)
        for _ in range(2)
    ]
    try:
        logs = await outage_during_a_call(
            replicas[0], simulator, time, break_store=proxy.cut, mend_store=proxy.start
        )
        await assert_applied_once(replicas[0], simulator, logs, must_retry=False, replicas=replicas)
    finally:
        await proxy.cut()
