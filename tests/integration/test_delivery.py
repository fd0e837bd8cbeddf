"""Delivery to the Developer Console: retries, dead letters, ordering, coalescing, crashes.

Every test drives the real broker app against the real platform simulator over HTTP; faults are
scripted on the simulator. The broker runs on a clock the test moves by hand (``ManualTime``), so
a retry due in 30 s is checked to the second without waiting for it, and the worker never waits on
a real timer; only the shutdown test, which is about real timeouts, runs on real time.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from broker.app import create_app
from broker.simulators.platform import PlatformSimulator
from broker.store.opening import open_store
from broker.web.appkeys import settings_key, store_key
from tests.conftest import db_rows, fast_settings, post_event
from tests.support.basics import (
    APP_DOMAIN,
    ZAPIKEY,
    ZGID,
    ZUID,
    ManualTime,
    eventually,
    subscription_event,
)
from tests.support.cli import run_cli
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


Client = TestClient[web.Request, web.Application]
SUBSCRIPTION_ID = "100000000000000001"


# --- helpers -------------------------------------------------------------------------------------


async def deliveries(client: Client) -> list[dict[str, Any]]:
    return await db_rows(client, "SELECT * FROM deliveries ORDER BY id")


# Longer than any client timeout or wait here: a held call ends only when the broker gives up on it.
HELD_SECONDS = 60.0


async def delivery(client: Client, delivery_id: int) -> dict[str, Any]:
    rows = await db_rows(client, "SELECT * FROM deliveries WHERE id = ?", [delivery_id])
    assert rows, f"no delivery {delivery_id}"
    return rows[0]


async def attempts(client: Client, delivery_id: int) -> list[dict[str, Any]]:
    return await db_rows(
        client, "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY id", [delivery_id]
    )


async def only_delivery_id(client: Client) -> int:
    """The id of the one delivery a single event queued (waits for it to be committed)."""
    await eventually(
        lambda: _count(client, "SELECT COUNT(*) AS n FROM deliveries", 1),
        message="one delivery queued",
    )
    return (await deliveries(client))[0]["id"]


async def _count(client: Client, sql: str, wanted: int) -> bool:
    return (await db_rows(client, sql))[0]["n"] == wanted


async def wait_for_state(
    client: Client, delivery_id: int, *states: str, within: float = 5.0
) -> dict[str, Any]:
    async def reached() -> bool:
        return (await delivery(client, delivery_id))["state"] in states

    await eventually(reached, within=within, message=f"delivery {delivery_id} in {states}")
    return await delivery(client, delivery_id)


async def post_ok(client: Client, payload: dict[str, Any]) -> None:
    response = await post_event(client, payload)
    assert response.status == 200, await response.text()


def db_path(tmp_path: Path) -> Path:
    """Where fast_settings puts the broker's database."""
    return tmp_path / "broker.db"


# Where ManualTime starts: a fixed moment, so times are literals, and far ahead of the real
# clock, so anything stamped with real time (the operator's `deliveries retry`) is already due.
START = 4_000_000_000.0


@pytest.fixture
def manual_time() -> ManualTime:
    return ManualTime(START)


# The schedule the timed tests read: 2 s doubling to 60 s, no jitter, and a poll interval so long
# that the worker only wakes for new work or when a retry falls due.
TIMED_DELIVERY = {
    "initial_backoff_seconds": 2.0,
    "max_backoff_seconds": 60.0,
    "jitter_seconds": 0.0,
    "poll_interval_seconds": 600.0,
}


@pytest.fixture
def timed_broker(
    platform_server: TestServer,
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
    manual_time: ManualTime,
) -> Callable[..., Awaitable[Client]]:
    """The real broker app on ``manual_time``; keywords override TIMED_DELIVERY, ``platform``
    the platform settings."""

    async def start(platform: dict[str, Any] | None = None, **delivery_settings: float) -> Client:
        settings = fast_settings(
            tmp_path,
            str(platform_server.make_url("")).rstrip("/"),
            delivery={**TIMED_DELIVERY, **delivery_settings},
            platform=platform or {},
        )
        app = create_app(settings, clock=manual_time.clock, sleep=manual_time.sleep)
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def broker(timed_broker: Callable[..., Awaitable[Client]]) -> Client:
    """In this file the plain broker runs on ``manual_time`` too: a worker that waits, waits
    for the test, never for a real timer."""
    return await timed_broker()


def upgrade(quantity: int, plan: str = "1002", **extra: Any) -> dict[str, Any]:
    return subscription_event(
        "subscription_upgraded", plan_code=f"{APP_DOMAIN}_{plan}", quantity=quantity, **extra
    )


# --- retries -------------------------------------------------------------------------------------


async def test_transient_503s_are_retried_on_the_backoff_schedule_until_one_applied_call(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    """Backoff 2 s, doubling: after three 503s the retries fall at +2, +2+4 = +6 and +6+8 = +14 s,
    and the worker sleeps until each (nothing is sent before the clock gets there)."""
    broker = await timed_broker()
    simulator.fail_next(3, status=503)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)

    for sent, retry_at in [(1, START + 2.0), (2, START + 6.0), (3, START + 14.0)]:
        await manual_time.nap_until(retry_at)
        assert len(simulator.calls) == sent
        assert (await delivery(broker, delivery_id))["next_attempt_at"] == retry_at
        manual_time.advance_to(retry_at)

    row = await wait_for_state(broker, delivery_id, "done")
    assert row["attempts"] == 4
    assert row["action"] == "add"
    assert [c.status for c in simulator.calls] == [503, 503, 503, 200]
    assert len(simulator.applied) == 1
    tried = await attempts(broker, delivery_id)
    assert [(a["status"], a["outcome"], a["method"]) for a in tried] == [
        (503, "retry", "POST"),
        (503, "retry", "POST"),
        (503, "retry", "POST"),
        (200, "success", "POST"),
    ]
    assert [a["started_at"] for a in tried] == [START, START + 2.0, START + 6.0, START + 14.0]
    for attempt in tried:
        assert attempt["latency_ms"] > 0
        assert "zapikey=***" in attempt["url"]
        assert ZAPIKEY not in attempt["url"]
        assert ZAPIKEY not in (attempt["request_body"] or "")
    assert "SERVICE_UNAVAILABLE" in tried[0]["response_excerpt"]


async def test_next_attempt_waits_for_retry_after(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    """A 429 with Retry-After: 30 puts the retry at +30 s, not at the 2 s backoff."""
    broker = await timed_broker()
    simulator.fail_next(1, status=429, retry_after=30)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)

    await manual_time.nap_until(START + 30.0)
    assert [c.status for c in simulator.calls] == [429]
    assert (await delivery(broker, delivery_id))["next_attempt_at"] == START + 30.0
    manual_time.advance_to(START + 30.0)

    await simulator.wait_until(lambda s: len(s.applied) == 1)
    assert [c.status for c in simulator.calls] == [429, 200]
    row = await wait_for_state(broker, delivery_id, "done")
    assert row["attempts"] == 2
    assert [a["started_at"] for a in await attempts(broker, delivery_id)] == [START, START + 30.0]


async def test_platform_down_keeps_retrying_then_delivers_once_when_it_returns(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    """Unreachable: attempts at 0, +2, +6 and +14 s all fail; the one at +30 s (14 + 16), after
    the platform is back, applies the Add once."""
    broker = await timed_broker()
    simulator.go_down()
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)

    for retry_at in (START + 2.0, START + 6.0, START + 14.0, START + 30.0):
        await manual_time.nap_until(retry_at)
        row = await delivery(broker, delivery_id)
        assert row["state"] == "pending"
        assert simulator.applied == []
        if retry_at == START + 30.0:
            simulator.come_up()
        manual_time.advance_to(retry_at)

    row = await wait_for_state(broker, delivery_id, "done")
    assert row["attempts"] == 5
    tried = await attempts(broker, delivery_id)
    assert [(a["status"], a["outcome"]) for a in tried] == [(None, "retry")] * 4 + [
        (200, "success")
    ]
    assert len(simulator.applied) == 1
    assert simulator.subscriptions[ZGID].active


async def test_slow_platform_times_out_is_retried_and_delivered_once(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    broker = await timed_broker(platform={"request_timeout_seconds": 0.3})
    simulator.set_delay(HELD_SECONDS)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)

    async def timed_out() -> bool:
        return any(a["error"] == "timed out" for a in await attempts(broker, delivery_id))

    await eventually(timed_out, message="an attempt recorded as timed out")
    first = (await attempts(broker, delivery_id))[0]
    assert (first["status"], first["outcome"], first["error"]) == (None, "retry", "timed out")
    assert first["latency_ms"] >= 290  # the 0.3 s client timeout, not an instant failure

    simulator.set_delay(0)
    await manual_time.nap_until(START + 2.0)
    manual_time.advance_to(START + 2.0)
    row = await wait_for_state(broker, delivery_id, "done")
    assert row["attempts"] == 2
    assert len(simulator.applied) == 1
    assert simulator.subscriptions[ZGID].no_of_users == "5"


# --- dead letters --------------------------------------------------------------------------------


async def test_400_dead_letters_keeps_the_answer_and_retry_redelivers_once(
    broker: Client, simulator: PlatformSimulator, tmp_path: Path, capsys, manual_time: ManualTime
):
    simulator.fail_next(1, status=400)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)

    row = await wait_for_state(broker, delivery_id, "dead")
    assert row["attempts"] == 1
    assert row["last_status"] == 400
    assert "INVALID_DATA" in row["last_error"]
    (tried,) = await attempts(broker, delivery_id)
    assert (tried["status"], tried["outcome"]) == (400, "reject")
    assert "INVALID_DATA" in tried["response_excerpt"]
    assert "simulated platform failure" in tried["response_excerpt"]
    assert simulator.applied == []

    code, out, _ = run_cli(
        capsys, "deliveries", "--db", str(db_path(tmp_path)), "list", "--state", "dead"
    )
    assert code == 0
    listed = [line for line in out.splitlines() if line.split()[:2] == [str(delivery_id), "dead"]]
    assert len(listed) == 1
    assert SUBSCRIPTION_ID in listed[0]
    assert "INVALID_DATA" in listed[0]

    code, out, _ = run_cli(
        capsys, "deliveries", "--db", str(db_path(tmp_path)), "retry", str(delivery_id)
    )
    assert code == 0
    assert f"requeued: [{delivery_id}]" in out
    await manual_time.end_the_nap()  # the operator's command wakes nobody: the worker looks

    row = await wait_for_state(broker, delivery_id, "done")
    assert len(simulator.applied) == 1
    assert [c.status for c in simulator.calls] == [400, 200]

    code, out, _ = run_cli(
        capsys, "deliveries", "--db", str(db_path(tmp_path)), "list", "--state", "dead"
    )
    assert code == 0
    assert "(no deliveries in state dead)" in out


async def test_retry_all_dead_requeues_every_dead_letter(
    broker: Client, simulator: PlatformSimulator, tmp_path: Path, capsys, manual_time: ManualTime
):
    simulator.fail_next(2, status=400)
    await post_ok(broker, subscription_event())
    await post_ok(
        broker,
        subscription_event(subscription_id="100000000000000002", zgid="70000000002"),
    )
    await eventually(
        lambda: _count(broker, "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'dead'", 2),
        message="two dead letters",
    )

    code, out, _ = run_cli(
        capsys, "deliveries", "--db", str(db_path(tmp_path)), "retry", "--all-dead"
    )
    assert code == 0
    assert "requeued: [1, 2]" in out
    await manual_time.end_the_nap()

    await eventually(
        lambda: _count(broker, "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'done'", 2),
        message="both redelivered",
    )
    assert sorted(c.zgid for c in simulator.applied) == ["70000000001", "70000000002"]


async def test_retrying_a_delivery_that_is_not_dead_fails_clearly(
    broker: Client, simulator: PlatformSimulator, tmp_path: Path, capsys
):
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)
    await wait_for_state(broker, delivery_id, "done")

    code, out, err = run_cli(
        capsys, "deliveries", "--db", str(db_path(tmp_path)), "retry", str(delivery_id)
    )
    assert code == 1
    assert f"delivery {delivery_id} is done, not dead" in err
    assert "requeued" not in out

    code, _, err = run_cli(capsys, "deliveries", "--db", str(db_path(tmp_path)), "retry", "999")
    assert code == 1
    assert "no delivery with id 999" in err
    assert (await delivery(broker, delivery_id))["state"] == "done"
    assert len(simulator.calls) == 1


async def test_db_option_after_the_action_is_accepted(
    broker: Client, simulator: PlatformSimulator, tmp_path: Path, capsys, manual_time: ManualTime
):
    simulator.fail_next(1, status=400)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)
    await wait_for_state(broker, delivery_id, "dead")

    code, out, _ = run_cli(
        capsys, "deliveries", "list", "--state", "dead", "--db", str(db_path(tmp_path))
    )
    assert code == 0
    assert SUBSCRIPTION_ID in out
    code, out, _ = run_cli(
        capsys, "deliveries", "retry", str(delivery_id), "--db", str(db_path(tmp_path))
    )
    assert code == 0
    await manual_time.end_the_nap()
    await wait_for_state(broker, delivery_id, "done")


async def test_failure_answer_is_a_dead_letter(broker: Client, simulator: PlatformSimulator):
    simulator.answer_failure_next(1)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)

    row = await wait_for_state(broker, delivery_id, "dead")
    assert row["attempts"] == 1
    assert row["last_status"] == 200
    assert "Failure" in row["last_error"]
    (tried,) = await attempts(broker, delivery_id)
    assert (tried["status"], tried["outcome"]) == (200, "reject")
    assert '"Failure"' in tried["response_excerpt"]
    assert simulator.applied == []
    assert len(simulator.calls) == 1


async def test_retryable_failures_dead_letter_at_the_retry_horizon(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    """Horizon 10 s, backoff 2 s doubling: attempts at 0, +2 and +6 s; the next would fall at
    +14 s, past the horizon, so the third failure is the last."""
    broker = await timed_broker(retry_horizon_seconds=10.0)
    simulator.fail_next(1000, status=503)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)
    for retry_at in (START + 2.0, START + 6.0):
        await manual_time.nap_until(retry_at)
        manual_time.advance_to(retry_at)

    row = await wait_for_state(broker, delivery_id, "dead")
    assert "horizon" in row["last_error"]
    assert row["attempts"] == 3
    assert len(simulator.calls) == 3
    assert simulator.applied == []
    assert (row["first_attempt_at"], row["finished_at"]) == (START, START + 6.0)


# --- ordering and concurrency --------------------------------------------------------------------


async def test_one_subscriptions_changes_reach_the_platform_in_order_never_together(
    broker: Client, simulator: PlatformSimulator
):
    delay = 0.3
    simulator.set_delay(delay)
    await post_ok(broker, subscription_event(quantity=5))
    created_id = await only_delivery_id(broker)
    await wait_for_state(broker, created_id, "in_flight")
    await post_ok(broker, upgrade(quantity=8))

    await simulator.wait_until(lambda s: len(s.applied) == 2)
    added, modified = simulator.calls
    assert (added.method, modified.method) == ("POST", "PUT")
    # The PUT left only after the POST was answered (the POST spent `delay` on the platform).
    assert modified.received_at >= added.received_at + delay
    org = simulator.subscriptions[ZGID]
    assert (org.planid, org.no_of_users, org.active) == ("1002", "8", True)
    await eventually(
        lambda: _count(broker, "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'done'", 2),
        message="both deliveries done",
    )
    assert [(r["id"], r["action"]) for r in await deliveries(broker)] == [
        (created_id, "add"),
        (created_id + 1, "modify"),
    ]


@dataclass
class Gate:
    """Holds every platform call at the door until opened, counting the calls waiting there."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0


@pytest.fixture
async def gated_broker(
    simulator: PlatformSimulator,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
) -> tuple[Client, Gate]:
    """The broker against the simulator behind a Gate."""
    gate = Gate()

    @web.middleware
    async def held(request: web.Request, handler: Handler) -> web.StreamResponse:
        gate.waiting += 1
        await gate.opened.wait()
        return await handler(request)

    app = simulator.app()
    app.middlewares.append(held)
    server = await aiohttp_server(app)
    settings = fast_settings(tmp_path, str(server.make_url("")).rstrip("/"))
    return await aiohttp_client(create_app(settings)), gate


async def test_many_subscriptions_are_delivered_concurrently_each_exactly_once(
    gated_broker: tuple[Client, Gate], simulator: PlatformSimulator
):
    broker, gate = gated_broker
    count = 50
    events = [
        subscription_event(subscription_id=str(100000000000001000 + i), zgid=str(71000000000 + i))
        for i in range(count)
    ]
    await asyncio.gather(*(post_ok(broker, event) for event in events))
    # Calls overlap: the worker puts at least 10 on the wire before any is answered.
    await eventually(lambda: gate.waiting >= 10, message="10 calls on the wire at once")
    assert simulator.calls == []
    gate.opened.set()

    await eventually(
        lambda: _count(broker, "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'done'", count),
        message=f"{count} deliveries done",
    )
    assert Counter(c.zgid for c in simulator.applied) == {
        str(71000000000 + i): 1 for i in range(count)
    }
    assert len(simulator.calls) == count
    rows = await deliveries(broker)
    assert {r["attempts"] for r in rows} == {1}


# --- coalescing ----------------------------------------------------------------------------------


async def test_changes_queued_while_the_platform_is_down_coalesce_into_one_call(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    # The clock stands still between failures, so each failed delivery waits, not on the wire,
    # when the next event lands; moving it on lets the retry find the newer delivery.
    broker = await timed_broker(max_backoff_seconds=2.0)
    simulator.go_down()

    # Each check names the attempts made so far: "pending after one attempt" also holds before
    # the attempt that the clock's move has just made due, which would race the next step.
    async def waiting_after_a_failure(delivery_id: int, attempts: int) -> bool:
        row = await delivery(broker, delivery_id)
        return row["state"] == "pending" and row["attempts"] == attempts

    await post_ok(broker, subscription_event(quantity=5))
    await eventually(lambda: waiting_after_a_failure(1, 1), message="created waiting to retry")
    await post_ok(broker, upgrade(quantity=8))
    await eventually(lambda: waiting_after_a_failure(2, 1), message="upgrade failed once")
    await manual_time.nap_until(START + 2.0)
    manual_time.advance_to(START + 2.0)
    await eventually(lambda: waiting_after_a_failure(2, 2), message="upgrade waiting to retry")
    await post_ok(broker, upgrade(quantity=12, plan="1003"))
    await eventually(lambda: waiting_after_a_failure(3, 1), message="second upgrade failed once")
    await manual_time.nap_until(START + 4.0)
    manual_time.advance_to(START + 4.0)
    await eventually(lambda: waiting_after_a_failure(3, 2), message="second upgrade waiting")

    simulator.come_up()
    await manual_time.nap_until(START + 6.0)
    manual_time.advance_to(START + 6.0)
    await wait_for_state(broker, 3, "done")
    states = [(r["id"], r["state"]) for r in await deliveries(broker)]
    assert states == [(1, "superseded"), (2, "superseded"), (3, "done")]
    (applied,) = simulator.applied
    assert (applied.method, applied.planid) == ("POST", "1003")
    assert applied.body is not None
    assert applied.body["no_of_users"] == "12"


async def test_change_arriving_during_a_failing_attempt_still_coalesces(
    timed_broker: Callable[..., Awaitable[Client]],
    simulator: PlatformSimulator,
    manual_time: ManualTime,
):
    broker = await timed_broker(platform={"request_timeout_seconds": 0.3})
    simulator.set_delay(HELD_SECONDS)  # every attempt times out: on the wire 0.3 s, then a retry
    await post_ok(broker, subscription_event(quantity=5))
    await wait_for_state(broker, 1, "in_flight")
    await post_ok(broker, upgrade(quantity=8))
    await post_ok(broker, upgrade(quantity=12, plan="1003"))

    async def first_attempt_over() -> bool:
        return bool(await attempts(broker, 1))

    await eventually(first_attempt_over, message="the in-flight attempt timed out")
    simulator.set_delay(0)

    async def settled() -> bool:
        return (await delivery(broker, 3))["state"] in ("done", "dead")

    await manual_time.run_until(settled, message="delivery 3 done or dead")
    assert [(c.method, c.planid) for c in simulator.applied] == [("POST", "1003")]
    assert (await delivery(broker, 1))["state"] == "superseded"


# --- crashes and shutdown ------------------------------------------------------------------------


@pytest.fixture
def strict_simulator() -> PlatformSimulator:
    """A platform that refuses an Add for a subscription it already holds."""
    return PlatformSimulator(ZAPIKEY, duplicate_add="fail")


@pytest.fixture
async def strict_broker(
    strict_simulator: PlatformSimulator,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
    manual_time: ManualTime,
) -> Client:
    server = await aiohttp_server(strict_simulator.app())
    url = str(server.make_url("")).rstrip("/")
    settings = fast_settings(tmp_path, url, delivery=TIMED_DELIVERY)
    return await aiohttp_client(
        create_app(settings, clock=manual_time.clock, sleep=manual_time.sleep)
    )


def crashed_mid_call(
    delivery_id: int,
    subscription_id: str,
    *,
    lease_expires_at: float,
    acked_json: str | None = None,
) -> Callable[[Any], None]:
    """The state a crash leaves after the platform applied a call the broker never recorded.

    The claim (state, lease, attempts + 1) was committed before the call; the outcome (attempt
    row, 'done', acked_json) never was, so acked_json is what it was before the call. The dead
    process's lease has run out.
    """

    def rewind(db: Any) -> None:
        db.execute("DELETE FROM attempts WHERE delivery_id = ?", [delivery_id])
        db.execute(
            "UPDATE deliveries SET state = 'in_flight', action = NULL, lease_owner = 'crashed',"
            " lease_expires_at = ?, finished_at = NULL, last_status = NULL, last_error = NULL,"
            " uncertain = 0 WHERE id = ?",
            [lease_expires_at, delivery_id],
        )
        db.execute(
            "UPDATE subscriptions SET acked_json = ? WHERE subscription_id = ?",
            [acked_json, subscription_id],
        )

    return rewind


async def test_add_interrupted_by_a_crash_is_completed_as_a_modify(
    strict_broker: Client, strict_simulator: PlatformSimulator, manual_time: ManualTime
):
    await post_ok(strict_broker, subscription_event(quantity=5))
    delivery_id = await only_delivery_id(strict_broker)
    await wait_for_state(strict_broker, delivery_id, "done")
    assert [c.method for c in strict_simulator.applied] == ["POST"]

    await strict_broker.app[store_key].write(
        crashed_mid_call(delivery_id, SUBSCRIPTION_ID, lease_expires_at=manual_time.now - 1)
    )
    await manual_time.end_the_nap()

    async def retried() -> bool:
        row = await delivery(strict_broker, delivery_id)
        return row["state"] == "done" and row["attempts"] == 2

    await eventually(retried, message="the expired lease taken back and delivered")
    row = await delivery(strict_broker, delivery_id)
    assert row["uncertain"] == 1
    assert row["action"] == "modify"
    assert "Modify applied" in row["last_error"]
    assert [(c.method, c.applied) for c in strict_simulator.calls] == [
        ("POST", True),
        ("POST", False),
        ("PUT", True),
    ]
    first, repeat, fallback = (call.body for call in strict_simulator.calls)
    assert first == repeat == fallback, "the repeat and its Modify carry the cut call's body"
    active = [s for s in strict_simulator.subscriptions.values() if s.active]
    assert [(s.subscription_id, s.no_of_users, s.zuid) for s in active] == [
        (SUBSCRIPTION_ID, "5", ZUID)
    ]
    (subscription,) = await db_rows(
        strict_broker,
        "SELECT acked_json FROM subscriptions WHERE subscription_id = ?",
        [SUBSCRIPTION_ID],
    )
    assert subscription["acked_json"] is not None
    tried = await attempts(strict_broker, delivery_id)
    assert [(a["method"], a["outcome"]) for a in tried] == [("POST", "reject"), ("PUT", "success")]


@pytest.fixture
def broker_against(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
    manual_time: ManualTime,
) -> Callable[[PlatformSimulator], Awaitable[Client]]:
    """The real broker, on ``manual_time``, against a simulator built by the test (e.g. how it
    refuses a Cancel)."""

    async def start(simulator: PlatformSimulator) -> Client:
        server = await aiohttp_server(simulator.app())
        url = str(server.make_url("")).rstrip("/")
        settings = fast_settings(tmp_path, url, delivery=TIMED_DELIVERY)
        return await aiohttp_client(
            create_app(settings, clock=manual_time.clock, sleep=manual_time.sleep)
        )

    return start


async def cancel_cut_by_a_crash(
    broker: Client,
    simulator: PlatformSimulator,
    manual_time: ManualTime,
    *,
    before_repeat: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """A live subscription is cancelled; the Cancel lands but a crash loses its record, so the
    restarted worker sends it again. Returns the delivery once that repeat is recorded."""
    await post_ok(broker, subscription_event(quantity=5))
    await wait_for_state(broker, 1, "done")
    (live,) = await db_rows(broker, "SELECT acked_json FROM subscriptions")
    await post_ok(broker, subscription_event("subscription_cancelled", status="cancelled"))
    await wait_for_state(broker, 2, "done")
    assert [c.method for c in simulator.applied] == ["POST", "DELETE"]

    before_repeat()
    await broker.app[store_key].write(
        crashed_mid_call(
            2, SUBSCRIPTION_ID, lease_expires_at=manual_time.now - 1, acked_json=live["acked_json"]
        )
    )
    await manual_time.end_the_nap()

    async def repeated() -> bool:
        row = await delivery(broker, 2)
        return row["state"] in ("done", "dead") and row["attempts"] == 2

    await eventually(repeated, message="the taken-back Cancel sent again and recorded")
    assert [c.method for c in simulator.calls] == ["POST", "DELETE", "DELETE"]
    assert simulator.calls[1].body == simulator.calls[2].body, "the repeat has the same content"
    return await delivery(broker, 2)


@pytest.mark.parametrize(("mode", "status"), [("not_found", 404), ("failure_gone", 200)])
async def test_repeated_cancel_answered_already_gone_counts_as_done(
    broker_against: Callable[[PlatformSimulator], Awaitable[Client]],
    manual_time: ManualTime,
    mode: Any,
    status: int,
):
    simulator = PlatformSimulator(ZAPIKEY, repeated_cancel=mode)
    broker = await broker_against(simulator)

    row = await cancel_cut_by_a_crash(broker, simulator, manual_time)

    assert (row["state"], row["uncertain"], row["last_status"]) == ("done", 1, status)
    assert "already gone" in row["last_error"]
    (subscription,) = await db_rows(broker, "SELECT acked_json FROM subscriptions")
    assert json.loads(subscription["acked_json"])["active"] is False
    (tried,) = await attempts(broker, 2)
    assert (tried["method"], tried["status"], tried["outcome"]) == ("DELETE", status, "reject")
    assert not simulator.subscriptions[ZGID].active


@pytest.mark.parametrize(
    ("mode", "scripted", "status", "kept"),
    [
        ("forbidden", None, 403, "NO_PERMISSION"),
        ("failure", None, 200, "Failure"),  # a bare Failure does not say why
        ("failure", 400, 400, "INVALID_DATA"),
        ("failure", 401, 401, "INVALID_TOKEN"),
    ],
)
async def test_repeated_cancel_refused_for_another_reason_is_a_dead_letter_with_the_answer(
    broker_against: Callable[[PlatformSimulator], Awaitable[Client]],
    manual_time: ManualTime,
    mode: Any,
    scripted: int | None,
    status: int,
    kept: str,
):
    """Only 'already gone' may count as done: a refusal about us or the request is kept for the
    operator, or a revoked zapikey would mark cancellations done while the org keeps the app."""
    simulator = PlatformSimulator(ZAPIKEY, repeated_cancel=mode)
    broker = await broker_against(simulator)

    def refuse_the_repeat() -> None:
        if scripted is not None:
            simulator.fail_next(1, scripted)

    row = await cancel_cut_by_a_crash(
        broker, simulator, manual_time, before_repeat=refuse_the_repeat
    )

    assert (row["state"], row["last_status"]) == ("dead", status)
    assert f"HTTP {status}" in row["last_error"]
    assert "not say the subscription is gone" in row["last_error"]
    (tried,) = await attempts(broker, 2)
    assert (tried["method"], tried["status"], tried["outcome"]) == ("DELETE", status, "reject")
    assert kept in tried["response_excerpt"]
    (subscription,) = await db_rows(broker, "SELECT acked_json FROM subscriptions")
    assert json.loads(subscription["acked_json"])["active"] is True, "nothing is assumed"


async def test_newer_change_after_a_crash_inherits_the_uncertainty(
    strict_broker: Client, strict_simulator: PlatformSimulator, manual_time: ManualTime
):
    """A crash mid-Add, then an upgrade: the upgrade's Add is refused and becomes a Modify."""
    await post_ok(strict_broker, subscription_event(quantity=5))
    await wait_for_state(strict_broker, 1, "done")
    store = strict_broker.app[store_key]

    def crashed_with_live_lease(db: Any) -> None:
        crashed_mid_call(1, SUBSCRIPTION_ID, lease_expires_at=manual_time.now + 60)(db)

    await store.write(crashed_with_live_lease)
    await post_ok(strict_broker, upgrade(quantity=8))
    await wait_for_state(strict_broker, 2, "pending")
    await store.write(
        lambda db: db.execute(
            "UPDATE deliveries SET lease_expires_at = ? WHERE id = 1", [manual_time.now - 1]
        )
    )
    await manual_time.end_the_nap()

    await wait_for_state(strict_broker, 2, "done", "dead")
    assert [(r["id"], r["state"]) for r in await deliveries(strict_broker)] == [
        (1, "superseded"),
        (2, "done"),
    ]
    assert [c.method for c in strict_simulator.applied] == ["POST", "PUT"]
    org = strict_simulator.subscriptions[ZGID]
    assert (org.planid, org.no_of_users, org.active) == ("1002", "8", True)


async def test_shutdown_mid_call_leaves_nothing_stuck_and_a_restart_delivers(
    make_broker, simulator: PlatformSimulator, tmp_path: Path
):
    overrides = {"platform": {"request_timeout_seconds": 0.5}}
    broker = await make_broker(**overrides)
    simulator.set_delay(HELD_SECONDS)
    await post_ok(broker, subscription_event())
    delivery_id = await only_delivery_id(broker)
    await wait_for_state(broker, delivery_id, "in_flight")

    settings = broker.app[settings_key]
    await broker.close()

    store = open_store(settings.store)  # the closed broker's database, opened afresh
    await store.open()
    try:
        row = await store.read(
            lambda db: db.select_one(
                "SELECT state, lease_owner FROM deliveries WHERE id = ?", [delivery_id]
            )
        )
    finally:
        await store.close()
    assert row == {"state": "pending", "lease_owner": None}  # the cut-short attempt was recorded
    assert simulator.applied == []

    simulator.set_delay(0)
    restarted = await make_broker(**overrides)
    row = await wait_for_state(restarted, delivery_id, "done", within=3.0)
    assert row["attempts"] == 2
    assert len(simulator.applied) == 1
