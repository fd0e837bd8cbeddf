"""Organisations whose platform calls hang cannot stall everyone else's deliveries.

More orgs hang than the worker has slots: calls past ``delivery.slow_call_seconds`` move to a
bounded slow share (or are cut short when it is full), so fresh calls always find a slot.
"""

from __future__ import annotations

import time
from typing import Any

from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import subscription_event
from tests.support.metrics import parse, value

CONCURRENCY = 4
HANGING_ORGS = 6  # more than the slots
OTHER_ORGS = 5
# Each other org's Add reaches the platform within this long of its webhook: far below the
# per-call deadline (3 s), which is all a hung call would otherwise give back its slot at.
BOUND_SECONDS = 1.0


def zgid(number: int) -> str:
    return f"{71000000000 + number}"


def org_event(number: int) -> dict[str, Any]:
    return subscription_event(
        subscription_id=f"{200000000000000000 + number}",
        customer_id=f"{300000000000000000 + number}",
        zgid=zgid(number),
        zuid=f"{81000000000 + number}",
    )


async def test_orgs_whose_calls_hang_cannot_stall_the_other_orgs_deliveries(
    make_broker: BrokerFactory, simulator: PlatformSimulator
) -> None:
    client = await make_broker(
        delivery={
            "concurrency": CONCURRENCY,
            "slow_call_seconds": 0.2,
            "slow_calls": 2,
        },
        platform={"request_timeout_seconds": 3.0},
    )
    hanging = {zgid(n) for n in range(HANGING_ORGS)}
    others = range(HANGING_ORGS, HANGING_ORGS + OTHER_ORGS)
    simulator.hang(hanging)
    try:
        for number in range(HANGING_ORGS):
            assert (await post_event(client, org_event(number))).status == 200
        # Every slot holds a hung call before the other orgs' changes arrive.
        await simulator.wait_until(lambda s: s.hanging >= CONCURRENCY)

        posted: dict[str, float] = {}
        for number in others:
            assert (await post_event(client, org_event(number))).status == 200
            posted[zgid(number)] = time.monotonic()

        def others_applied(s: PlatformSimulator) -> bool:
            return {c.zgid for c in s.applied} >= posted.keys()

        await simulator.wait_until(others_applied, timeout=10)
        waited = {
            call.zgid: round(call.received_at - posted[call.zgid], 3)
            for call in simulator.applied
            if call.zgid in posted
        }
        assert max(waited.values()) < BOUND_SECONDS, waited
        assert not [c for c in simulator.applied if c.zgid in hanging]

        # Two hung calls moved to the slow share (its size); the others were cut short, kept as
        # retries that may have been applied, so their deliveries are marked uncertain.
        samples = parse(await (await client.get("/metrics")).text())
        assert value(samples, "broker_slow_platform_calls_total", outcome="moved") >= 2
        assert value(samples, "broker_slow_platform_calls_total", outcome="cut") >= 2
        cut = await db_rows(
            client,
            "SELECT d.uncertain, a.outcome, a.status FROM attempts a JOIN deliveries d"
            " ON d.id = a.delivery_id WHERE a.error LIKE 'cut short after 0.2 s%'",
        )
        assert cut, "no attempt was cut short"
        assert {(row["uncertain"], row["outcome"], row["status"]) for row in cut} == {
            (1, "retry", None)
        }
    finally:
        simulator.release()
