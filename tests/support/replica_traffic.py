"""Traffic for the replica tests: waves of webhooks spread over replicas with duplicates, and
the counts of what the platform simulator received (delivered, repeated, lost, cut)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from broker.simulators.platform import PlatformSimulator, RecordedCall
from tests.support.basics import eventually, subscription_event, updated_time
from tests.support.replicas import Replica, post_webhook, rows, unfinished


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
