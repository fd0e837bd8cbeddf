"""The operator console's views and actions, driven through the real app against the real
Developer Console simulator: what each list shows and filters, what each action changes, and
that every action lands in the audit log with who did it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import ZAPIKEY, ZGID, eventually, subscription_event
from tests.support.ops import (
    OPS,
    Client,
    audit_rows,
    delivery_ids,
    delivery_state,
    sign_in,
    wait_for_state,
)
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


FIRST = "100000000000000001"
SECOND = "100000000000000002"


async def post_ok(client: Client, payload: dict) -> None:
    response = await post_event(client, payload)
    assert response.status == 200, await response.text()


async def dead_letter(client: Client, simulator: PlatformSimulator, sid: str, zgid: str) -> int:
    simulator.fail_next(1, status=400)
    await post_ok(client, subscription_event(subscription_id=sid, zgid=zgid))
    await eventually(lambda: delivery_ids(client, sid), message=f"{sid} queued")
    (delivery_id,) = await delivery_ids(client, sid)
    await wait_for_state(client, delivery_id, "dead")
    return delivery_id


async def test_events_list_filters_pages_and_shows_the_raw_body_redacted(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops={**OPS, "page_size": 1})
    await sign_in(client)
    leaked = subscription_event(subscription_id=FIRST, event_id="7001")
    leaked["data"]["subscription"]["notes"] = f"see https://x.example/?zapikey={ZAPIKEY}"
    await post_ok(client, leaked)
    await post_ok(
        client,
        subscription_event(
            "subscription_renewed",
            subscription_id=SECOND,
            event_id="7002",
            zgid="70000000002",
            customer_id="900000000000000002",
        ),
    )

    newest = await (await client.get("/ops/events")).text()
    assert "7002" in newest
    assert "7001" not in newest
    assert "page=2" in newest  # a next page, its link keeping the filters
    older = await (await client.get("/ops/events?page=2")).text()
    assert "7001" in older
    assert "7002" not in older

    # Each filter below matches one event exactly, so one row per page still tells.
    by_type = await (await client.get("/ops/events?type=subscription_created")).text()
    assert "7001" in by_type
    assert "7002" not in by_type
    by_org = await (await client.get("/ops/events?org=70000000002")).text()
    assert "7002" in by_org
    assert "page=2" not in by_org
    by_own_org = await (await client.get(f"/ops/events?org={ZGID}")).text()
    assert "7001" in by_own_org
    assert "page=2" not in by_own_org
    by_date = await (await client.get("/ops/events?until=2001-01-01")).text()
    assert "No events match." in by_date

    event = await client.get("/ops/events/7001")
    body = await event.text()
    assert event.status == 200
    assert "subscription_created" in body
    assert "zapikey=***" in body
    assert ZAPIKEY not in body


async def test_a_malformed_filter_is_a_400_naming_it(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    await sign_in(client)
    response = await client.get("/ops/events?since=yesterday&page=0")
    text = await response.text()
    assert response.status == 400
    assert "since: &#39;yesterday&#39; is not a date" in text
    assert "page: a whole number from 1" in text
    unknown = await client.get("/ops/deliveries?state=lost")
    assert unknown.status == 400
    assert "unknown delivery state" in await unknown.text()
    assert (await client.get("/ops/events/nope")).status == 404
    assert (await client.get("/ops/deliveries/abc")).status == 404


async def test_retrying_a_dead_letter_redelivers_it_and_audits_the_operator(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    delivery_id = await dead_letter(client, simulator, FIRST, ZGID)

    listed = await (await client.get("/ops/deliveries?state=dead")).text()
    assert "Dead letters" in listed
    assert f'href="/ops/deliveries/{delivery_id}"' in listed
    assert "INVALID_DATA" in listed
    detail = await (await client.get(f"/ops/deliveries/{delivery_id}")).text()
    assert "POST" in detail
    assert ZAPIKEY not in detail

    response = await client.post(
        "/ops/deliveries/retry", data={"csrf": csrf, "delivery": str(delivery_id)}
    )
    assert response.status == 200
    assert "requeued 1" in await response.text()
    await wait_for_state(client, delivery_id, "done")
    assert [call.status for call in simulator.calls] == [400, 200]
    (row,) = await audit_rows(client, "ops.retry_dead")
    assert (row["zuid"], row["result"], row["subscription_id"]) == (
        "ops:operator",
        "requeued",
        FIRST,
    )
    assert json.loads(row["detail"]) == {"delivery_id": delivery_id}

    again = await client.post(
        "/ops/deliveries/retry", data={"csrf": csrf, "delivery": str(delivery_id)}
    )
    assert again.status == 409


async def test_retry_all_matching_requeues_only_what_the_filter_names(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    first = await dead_letter(client, simulator, FIRST, ZGID)
    second = await dead_letter(client, simulator, SECOND, "70000000002")

    response = await client.post(
        f"/ops/deliveries/retry?state=dead&subscription={SECOND}", data={"csrf": csrf}
    )
    assert response.status == 200
    await wait_for_state(client, second, "done")
    assert await delivery_state(client, first) == "dead"
    (row,) = await audit_rows(client, "ops.retry_dead")
    assert (row["subscription_id"], json.loads(row["detail"])) == (SECOND, {"delivery_id": second})


async def test_retry_now_makes_a_pending_delivery_due_at_once(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    # An hour's backoff after the first failure: without "retry now" the platform waits.
    client = await make_broker(
        ops=OPS, delivery={"initial_backoff_seconds": 3600.0, "max_backoff_seconds": 3600.0}
    )
    csrf = await sign_in(client)
    simulator.fail_next(1, status=503)
    await post_ok(client, subscription_event(subscription_id=FIRST))
    await eventually(lambda: delivery_ids(client, FIRST), message="queued")
    (delivery_id,) = await delivery_ids(client, FIRST)

    async def failed_once() -> bool:
        rows = await db_rows(
            client, "SELECT attempts, state FROM deliveries WHERE id = ?", [delivery_id]
        )
        return (rows[0]["attempts"], rows[0]["state"]) == (1, "pending")

    await eventually(failed_once, message="first attempt failed")
    assert await delivery_state(client, delivery_id) == "pending"
    pending = await (await client.get("/ops/deliveries?state=pending")).text()
    assert "Retry now" in pending

    response = await client.post(f"/ops/deliveries/{delivery_id}/retry-now", data={"csrf": csrf})
    assert response.status == 200
    assert f"delivery {delivery_id} is due now" in await response.text()
    await wait_for_state(client, delivery_id, "done")
    assert simulator.subscriptions[ZGID].active
    (row,) = await audit_rows(client, "ops.retry_now")
    assert row["subscription_id"] == FIRST

    done = await client.post(f"/ops/deliveries/{delivery_id}/retry-now", data={"csrf": csrf})
    assert done.status == 409
    assert "not pending" in await done.text()


async def test_digits_of_other_scripts_in_ids_are_refused_not_a_500(make_broker: BrokerFactory):
    """``str.isdigit`` accepts "²" and "١٢", which ``int`` then refuses or reads as 12."""
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    for path in ("/ops/deliveries/%C2%B2", "/ops/reconcile/%C2%B2", "/ops/deliveries/%D9%A1%D9%A2"):
        assert (await client.get(path)).status == 404, path
    retry = await client.post("/ops/deliveries/retry", data={"csrf": csrf, "delivery": "²"})
    assert retry.status == 400
    now = await client.post("/ops/deliveries/%C2%B2/retry-now", data={"csrf": csrf})
    assert now.status == 404
    page = await client.get("/ops/events?page=%C2%B2")
    assert page.status == 400
    parked = "100000000000000077"
    await post_ok(client, subscription_event(subscription_id=parked, zuid=None, zgid=None))
    resolve = await client.post(
        f"/ops/parked/{parked}/resolve", data={"csrf": csrf, "zgid": "١٢", "zuid": "²"}
    )
    assert resolve.status == 400
    assert "zgid: digits only" in await resolve.text()
