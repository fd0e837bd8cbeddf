"""Three ``broker serve`` replicas on one PostgreSQL database, as behind a load balancer.

Real processes (SIGKILL is a real kill), the platform simulator in the test process (it records
arrival order and, per org, how many calls it holds at once). Webhooks go round-robin and each
is posted again to another replica, some of those at the same moment. Every figure the guarantee
is about (delivered, repeated, lost, cut) is counted and printed (``-s``), then bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broker.simulators.platform import PlatformSimulator, RecordedCall
from tests.replica_support import (
    LEASE_SECONDS,
    Replica,
    ReplicaStarter,
    Wire,
    post_webhook,
    rows,
    unfinished,
    watched_app,
)
from tests.support import eventually, subscription_event, updated_time

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

SUBSCRIPTIONS = 100
CHANGES = 3  # per subscription: an Add, then two Modifies (5, 6 then 7 users)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def platform_server(
    simulator: PlatformSimulator, wire: Wire, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> TestServer:
    return await aiohttp_server(watched_app(simulator, wire))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # No keep-alive: a pooled connection to a killed replica must not be reused.
    connector = aiohttp.TCPConnector(force_close=True, limit=16)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=20)
    ) as client:
        yield client


def sid_of(number: int, tag: str) -> str:
    return f"{tag}{number:05d}"


def changes(count: int, *, tag: str, per_subscription: int = 1) -> list[list[dict[str, Any]]]:
    """Waves of events: wave k holds change k of every subscription (users 5, 6, 7, ...), each
    newer in billing than the last, each its own event id (all digits)."""
    waves = []
    for k in range(per_subscription):
        kind = "subscription_created" if k == 0 else "subscription_upgraded"
        waves.append(
            [
                subscription_event(
                    kind,
                    subscription_id=sid_of(i, tag),
                    zgid=f"7{sid_of(i, tag)}",
                    zuid=f"6{sid_of(i, tag)}",
                    customer_id=f"9{sid_of(i, tag)}",
                    email=f"owner{i}@example.com",
                    quantity=5 + k,
                    updated=updated_time(),
                    event_id=f"8{k}{sid_of(i, tag)}",
                )
                for i in range(count)
            ]
        )
    return waves


@dataclass
class Posted:
    """What the replicas answered: event ids acknowledged, and the outcomes per event id."""

    acked: set[str]
    outcomes: dict[str, list[str]]
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def post_spread(
    session: aiohttp.ClientSession,
    replicas: list[Replica],
    events: list[dict[str, Any]],
    *,
    at_once: int = 16,
) -> Posted:
    """Event i to replica i mod n, and again to the next one: at the same moment for even i,
    after the first answer for odd i; ``at_once`` events at a time. A replica that is gone
    answers nothing (counted)."""
    posted = Posted(set(), {e["event_id"]: [] for e in events})
    gate = asyncio.Semaphore(at_once)

    async def one(replica: Replica, event: dict[str, Any]) -> None:
        try:
            status, body = await post_webhook(session, replica, event)
        except (aiohttp.ClientError, ValueError) as exc:
            posted.errors[type(exc).__name__] += 1
            posted.failed += 1
            return
        assert status == 200, f"{replica.name} answered {status}: {body}\n{replica.logs()}"
        posted.acked.add(event["event_id"])
        posted.outcomes[event["event_id"]].append(body["outcome"])

    async def both(i: int, event: dict[str, Any]) -> None:
        first, second = replicas[i % len(replicas)], replicas[(i + 1) % len(replicas)]
        async with gate:
            if i % 2 == 0:
                await asyncio.gather(one(first, event), one(second, event))
            else:
                await one(first, event)
                await one(second, event)

    await asyncio.gather(*(both(i, event) for i, event in enumerate(events)))
    return posted


@dataclass(frozen=True)
class Counts:
    """Per change (subscription, number of users): the guarantee's numbers."""

    changes: int  # changes acknowledged
    delivered: int  # subscriptions whose last change the platform holds
    applied: int  # changes the platform applied (older ones may be superseded, never sent)
    repeated: int  # changes applied more than once
    lost: int  # subscriptions whose last change the platform does not hold
    out_of_order: int  # subscriptions where an older change arrived after a newer one
    cut: int  # calls a kill cut off before the platform answered (it applied none)
    calls: int  # every call the platform received

    def line(self) -> str:
        return (
            f"changes={self.changes} delivered={self.delivered} applied={self.applied} "
            f"repeated={self.repeated} lost={self.lost} out_of_order={self.out_of_order} "
            f"cut={self.cut} calls={self.calls}"
        )


async def lease_owner(replica: Replica) -> str:
    """The delivery worker's lease owner, from its ``delivery.worker_started`` log line (the
    worker may start just after /readyz answers)."""
    found: list[str] = []

    def logged() -> bool:
        for line in replica.log.read_text().splitlines():
            if "delivery.worker_started" in line:
                found.append(str(json.loads(line)["owner"]))
        return bool(found)

    await eventually(logged, within=10, message=f"{replica.name}: delivery.worker_started")
    return found[0]


def users(call: RecordedCall) -> int:
    assert call.body is not None
    return int(call.body["no_of_users"])


def count(simulator: PlatformSimulator, waves: list[list[dict[str, Any]]]) -> Counts:
    """Count, never hide, what the platform received, in the order it arrived."""
    last = {e["data"]["subscription"]["subscription_id"]: 5 + len(waves) - 1 for e in waves[0]}
    applied: dict[str, list[int]] = {sid: [] for sid in last}
    cut = calls = 0
    for call in simulator.calls:
        if call.body is None or call.body.get("subscription_id") not in last:
            continue
        calls += 1
        cut += call.aborted
        if call.applied:
            applied[call.body["subscription_id"]].append(users(call))
    held = {
        sid: simulator.subscriptions.get(f"7{sid}") for sid in last
    }  # each subscription's own org
    delivered = sum(
        1
        for sid, want in last.items()
        if (h := held[sid]) is not None and h.active and int(h.no_of_users) == want
    )
    return Counts(
        changes=sum(len(wave) for wave in waves),
        delivered=delivered,
        applied=sum(len(set(seen)) for seen in applied.values()),
        repeated=sum(len(seen) - len(set(seen)) for seen in applied.values()),
        lost=len(last) - delivered,
        out_of_order=sum(1 for seen in applied.values() if seen != sorted(seen)),
        cut=cut,
        calls=calls,
    )


async def one_row_per_event(url: str, waves: list[list[dict[str, Any]]]) -> None:
    wanted = sorted(e["event_id"] for wave in waves for e in wave)
    found = await rows(url, "SELECT event_id FROM webhook_events ORDER BY event_id")
    assert [r["event_id"] for r in found] == wanted


async def all_done(url: str, replica: Replica, *, within: float) -> None:
    async def through() -> bool:
        return await unfinished(url) == 0

    try:
        await eventually(through, within=within, interval=0.1, message="every delivery finished")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{replica.logs()}") from None


async def test_three_replicas_deliver_each_change_once_in_order(
    start_replicas: ReplicaStarter,
    simulator: PlatformSimulator,
    wire: Wire,
    session: aiohttp.ClientSession,
    postgres_url: str,
) -> None:
    """300 changes of 100 subscriptions, round-robin over three replicas, each posted twice: one
    webhook row per event, every last change delivered, none twice, none out of order, and never
    two calls of one subscription on the wire at once across the replicas."""
    simulator.set_delay(0.01)  # calls take a moment, so replicas overlap on the wire
    replicas = await start_replicas(3)
    for replica in replicas:
        await replica.wait_ready(session)

    waves = changes(SUBSCRIPTIONS, tag="201", per_subscription=CHANGES)
    for wave in waves:
        posted = await post_spread(session, replicas, wave)
        assert posted.failed == 0
        for event_id, outcomes in posted.outcomes.items():
            assert sorted(outcomes).count("duplicate") == 1, (event_id, outcomes)
            assert len(outcomes) == 2, (event_id, outcomes)
    await all_done(postgres_url, replicas[0], within=40)

    counts = count(simulator, waves)
    print(f"3 replicas, duplicates cross-posted: {counts.line()} most_at_once={wire.most_at_once}")
    await one_row_per_event(postgres_url, waves)
    assert counts.lost == 0, counts.line()
    assert counts.delivered == SUBSCRIPTIONS, counts.line()
    assert counts.repeated == 0, counts.line()
    assert counts.out_of_order == 0, counts.line()
    assert counts.applied >= SUBSCRIPTIONS, counts.line()
    assert wire.most_at_once == 1, "two calls of one subscription were on the wire at once"


KILL_EVENTS = 240


async def test_kill_one_replica_mid_burst_the_others_take_its_leases(
    start_replicas: ReplicaStarter,
    simulator: PlatformSimulator,
    wire: Wire,
    session: aiohttp.ClientSession,
    postgres_url: str,
) -> None:
    """SIGKILL one of three replicas with calls on the wire: the survivors retake its leases once
    they run out; every acknowledged event is delivered; repeats only for calls the kill cut."""
    simulator.set_delay(0.3)  # calls are held, so the kill lands with some inside the simulator
    # The victim logs at INFO, so its worker's lease owner can be read from its log.
    replicas = [*await start_replicas(1, BROKER_LOG__LEVEL="INFO"), *await start_replicas(2)]
    for replica in replicas:
        await replica.wait_ready(session)
    (events,) = changes(KILL_EVENTS, tag="202")
    victim = replicas[0]
    owner = await lease_owner(victim)
    at_kill: dict[str, int] = {}

    async def killer() -> None:
        await eventually(
            lambda: len(simulator.calls) >= 3 and wire.in_flight >= 3,
            within=30,
            interval=0.005,
            message="deliveries under way during the burst",
        )
        at_kill.update(in_flight=wire.in_flight, answered=len(simulator.calls))
        await victim.kill()
        # Its leases stay taken until they run out (2 s): these are the calls it left unrecorded.
        stranded = await rows(
            postgres_url,
            "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'in_flight' AND lease_owner = %s",
            (owner,),
        )
        at_kill["stranded"] = int(stranded[0]["n"])

    posted, _ = await asyncio.gather(post_spread(session, replicas, events, at_once=4), killer())
    assert posted.failed > 0, "the kill landed after the burst; the test proves nothing"
    # Zoho sends again what was not acknowledged; the survivors take it.
    missed = [e for e in events if e["event_id"] not in posted.acked]
    again = await post_spread(session, replicas[1:], missed)
    assert again.failed == 0
    assert posted.acked | again.acked == {e["event_id"] for e in events}

    await all_done(postgres_url, replicas[1], within=LEASE_SECONDS + 30)
    counts = count(simulator, [events])
    retaken = await rows(postgres_url, "SELECT COUNT(*) AS n FROM deliveries WHERE uncertain = 1")
    print(
        f"kill -9 of 1 of 3 replicas mid-burst: {counts.line()} in_flight_at_kill="
        f"{at_kill['in_flight']} stranded={at_kill['stranded']} retaken={retaken[0]['n']} "
        f"posts_refused={posted.failed} reposted={len(missed)} "
        f"most_at_once={wire.most_at_once}"
    )
    await one_row_per_event(postgres_url, [events])
    assert counts.lost == 0, counts.line()
    assert counts.delivered == KILL_EVENTS, counts.line()
    assert counts.cut >= 1, "the kill cut no call; the test proves nothing"
    # Only the victim's calls are cut; a repeat is a victim's call the platform applied before
    # the kill whose answer the victim never recorded. Both come from its stranded leases.
    assert counts.cut + counts.repeated <= at_kill["stranded"], counts.line()
    assert retaken[0]["n"] == at_kill["stranded"], "each stranded lease retaken, marked uncertain"
    assert counts.out_of_order == 0
    assert wire.most_at_once == 1


DOWN_EVENTS = 60


async def test_platform_down_during_the_burst_then_up_delivers_everything(
    start_replicas: ReplicaStarter,
    simulator: PlatformSimulator,
    wire: Wire,
    session: aiohttp.ClientSession,
    postgres_url: str,
) -> None:
    """The platform drops every call for a while, then comes back: nothing lost, nothing applied
    twice, and the retries while it was down stay within what the backoff allows."""
    replicas = await start_replicas(3)
    for replica in replicas:
        await replica.wait_ready(session)
    (events,) = changes(DOWN_EVENTS, tag="203")
    simulator.go_down()
    went_down = time.monotonic()
    posted = await post_spread(session, replicas, events)
    assert posted.failed == 0
    await simulator.wait_until(lambda s: len(s.calls) >= 3 * DOWN_EVENTS, timeout=30)
    simulator.come_up()
    down_for = time.monotonic() - went_down
    dropped = len(simulator.calls)

    await all_done(postgres_url, replicas[0], within=30)
    counts = count(simulator, [events])
    attempts = await rows(postgres_url, "SELECT MAX(attempts) AS most FROM deliveries")
    # Backoff starts at 0.05 s and doubles to 0.2 s: while down, at most one try per 0.05 s.
    bound = 2 + down_for / 0.05
    print(
        f"platform down {down_for:.1f}s under 3 replicas: {counts.line()} dropped={dropped} "
        f"most_attempts={attempts[0]['most']} bound={bound:.0f}"
    )
    assert counts.lost == 0, counts.line()
    assert counts.delivered == DOWN_EVENTS, counts.line()
    assert counts.repeated == 0, counts.line()
    assert attempts[0]["most"] <= bound
    assert wire.most_at_once == 1


async def test_wakeups_cross_replicas_with_a_long_poll(
    start_replicas: ReplicaStarter,
    simulator: PlatformSimulator,
    session: aiohttp.ClientSession,
    postgres_url: str,
) -> None:
    """Polling every 30 s, deliveries still go out within seconds: a commit wakes the workers."""
    replicas = await start_replicas(3, BROKER_DELIVERY__POLL_INTERVAL_SECONDS="30")
    for replica in replicas:
        await replica.wait_ready(session)
    (events,) = changes(30, tag="204")
    started = time.monotonic()
    posted = await post_spread(session, replicas, events)
    assert posted.failed == 0
    await simulator.wait_until(lambda s: len(s.applied) >= len(events), timeout=5)
    print(f"30 events over 3 replicas polling every 30 s: {time.monotonic() - started:.2f}s")
    assert count(simulator, [events]).delivered == len(events)
