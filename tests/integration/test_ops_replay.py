"""Replaying stored webhook events from the console, against the real Developer Console
simulator: a replay is not deduplicated away, sends the state again when the platform lost it,
never lets an older event override a newer snapshot, asks before a range, and is audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import ZGID, eventually, subscription_event
from tests.support.ops import OPS, Client, audit_rows, delivery_ids, sign_in, wait_for_state

SID = "100000000000000001"
TODAY = datetime.now(UTC).date().isoformat()


async def post_ok(client: Client, payload: dict) -> None:
    response = await post_event(client, payload)
    assert response.status == 200, await response.text()


async def test_replay_after_a_dead_delivery_sends_the_state_again(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    simulator.fail_next(1, status=400)  # the platform refuses: the delivery goes dead
    await post_ok(client, subscription_event(subscription_id=SID, event_id="9101", quantity=4))
    await eventually(lambda: delivery_ids(client, SID), message="queued")
    (dead,) = await delivery_ids(client, SID)
    await wait_for_state(client, dead, "dead")
    assert simulator.subscriptions.get(ZGID) is None

    # The operator fixed the platform; the same event again would be a duplicate...
    assert (await (await post_event(client, subscription_event(event_id="9101"))).json())[
        "outcome"
    ] == "duplicate"
    # ...but a replay feeds it through the pipeline and queues the call again.
    response = await client.post("/ops/events/9101/replay", data={"csrf": csrf})
    assert response.status == 200
    assert "replayed: queued" in await response.text()
    ids = await delivery_ids(client, SID)
    assert len(ids) == 2
    await wait_for_state(client, ids[1], "done")
    assert simulator.subscriptions[ZGID].no_of_users == "4"
    (audited,) = await audit_rows(client, "ops.replay")
    assert audited["zuid"] == "ops:operator"
    assert audited["result"] == "queued"
    assert json.loads(audited["detail"])["event_id"] == "9101"
    cause = await db_rows(client, "SELECT cause FROM deliveries WHERE id = ?", [ids[1]])
    assert cause == [{"cause": "replay:9101"}]


async def test_replaying_an_older_event_does_not_override_a_newer_snapshot(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    await post_ok(client, subscription_event(subscription_id=SID, event_id="9201", quantity=3))
    await post_ok(
        client,
        subscription_event(
            "subscription_upgraded", subscription_id=SID, event_id="9202", quantity=8
        ),
    )

    def upgraded() -> bool:
        found = simulator.subscriptions.get(ZGID)
        return found is not None and found.no_of_users == "8"

    await eventually(upgraded, message="the upgrade delivered")
    calls = len(simulator.calls)

    response = await client.post("/ops/events/9201/replay", data={"csrf": csrf})
    assert "replayed: stale" in await response.text()
    stored = await db_rows(client, "SELECT billing_json, billing_source FROM subscriptions")
    assert json.loads(stored[0]["billing_json"])["plan"]["quantity"] == 8
    assert stored[0]["billing_source"] == "webhook:9202"
    assert len(await delivery_ids(client, SID)) == 2  # nothing new queued
    assert len(simulator.calls) == calls
    (audited,) = await audit_rows(client, "ops.replay")
    assert audited["result"] == "stale"


async def test_a_range_replay_asks_first_then_replays_each_event_oldest_first(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    for n, quantity in ((1, 2), (2, 6)):
        await post_ok(
            client,
            subscription_event(
                subscription_id=f"10000000000000000{n}",
                event_id=f"930{n}",
                zgid=f"7000000000{n}",
                customer_id=f"90000000000000000{n}",
                quantity=quantity,
            ),
        )
    await eventually(lambda: len(simulator.subscriptions) == 2, message="both delivered")

    asked = await client.get(f"/ops/events/replay?since={TODAY}&until={TODAY}")
    page = await asked.text()
    assert asked.status == 200
    assert "Yes, replay 2" in page
    assert "9301, 9302" in page
    assert await audit_rows(client, "ops.replay") == []  # asking changed nothing

    done = await client.post(
        "/ops/events/replay",
        data={"csrf": csrf, "since": TODAY, "until": TODAY, "confirm": "yes"},
    )
    assert done.status == 200
    assert "replayed 2 events: queued 2" in await done.text()
    audited = await audit_rows(client, "ops.replay")
    assert [json.loads(a["detail"])["event_id"] for a in audited] == ["9301", "9302"]


async def test_a_range_replay_needs_both_dates_and_the_form_token(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    missing = await client.get(f"/ops/events/replay?since={TODAY}")
    assert missing.status == 400
    assert "until: required" in await missing.text()
    backwards = await client.get("/ops/events/replay?since=2026-12-02&until=2026-12-01")
    assert "from: must be before until" in await backwards.text()
    forged = await client.post(
        "/ops/events/replay", data={"since": TODAY, "until": TODAY, "confirm": "yes"}
    )
    assert forged.status == 403
    unknown = await client.post("/ops/events/0000/replay", data={"csrf": csrf})
    assert unknown.status == 404
    assert "no webhook event 0000" in await unknown.text()
