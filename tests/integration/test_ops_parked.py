"""Parked subscriptions in the operator console: listed with their reason, resolved by hand to
the org the operator chooses (after a confirmation page, audited), then told in the
subscription's story and the audit log."""

from __future__ import annotations

import json

from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, post_event
from tests.support.basics import ZUID, eventually, subscription_event
from tests.support.ops import OPS, audit_rows, delivery_ids, sign_in, wait_for_state

PARKED = "100000000000000009"
ORG = "70000000042"


async def test_resolving_a_parked_subscription_asks_first_then_sends_it_to_the_chosen_org(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    response = await post_event(
        client, subscription_event(subscription_id=PARKED, zuid=None, zgid=None, event_id="7009")
    )
    assert response.status == 200

    listed = await (await client.get("/ops/parked")).text()
    assert PARKED in listed
    assert "Resolve" in listed
    story = await (await client.get(f"/ops/subscriptions/{PARKED}")).text()
    assert "<dt>State</dt><dd>parked" in story
    assert f'href="/ops/parked/{PARKED}/resolve">Resolve</a>' in story
    assert "zuid and zgid unknown" in story  # the reason, as prose
    form = await client.get(f"/ops/parked/{PARKED}/resolve")
    assert form.status == 200
    assert 'name="zgid"' in await form.text()

    bad = await client.post(f"/ops/parked/{PARKED}/resolve", data={"csrf": csrf, "zgid": "org 42"})
    assert bad.status == 400
    assert "zgid: digits only" in await bad.text()

    confirm = await client.post(
        f"/ops/parked/{PARKED}/resolve", data={"csrf": csrf, "zgid": ORG, "zuid": ZUID}
    )
    page = await confirm.text()
    assert confirm.status == 200
    assert "Yes, resolve it" in page
    assert ORG in page
    assert await delivery_ids(client, PARKED) == []  # nothing done before confirmation

    done = await client.post(
        f"/ops/parked/{PARKED}/resolve",
        data={"csrf": csrf, "zgid": ORG, "zuid": ZUID, "confirm": "yes"},
    )
    assert done.status == 200
    assert f"Subscription {PARKED}" in await done.text()
    await eventually(lambda: delivery_ids(client, PARKED), message="queued after resolving")
    (delivery_id,) = await delivery_ids(client, PARKED)
    await wait_for_state(client, delivery_id, "done")
    assert simulator.subscriptions[ORG].active
    assert simulator.applied[0].body["zuid"] == ZUID

    (row,) = await audit_rows(client, "ops.resolve_parked")
    assert (row["zuid"], row["subscription_id"], row["result"]) == (
        "ops:operator",
        PARKED,
        "queued",
    )
    assert json.loads(row["detail"])["zgid"] == ORG
    assert PARKED not in await (await client.get("/ops/parked")).text()

    story = await (await client.get(f"/ops/subscriptions/{PARKED}")).text()
    assert "<dt>State</dt><dd>applied</dd>" in story  # its target was chosen and sent
    assert f"/ops/parked/{PARKED}/resolve" not in story
    order = [
        story.index(marker)
        for marker in (
            "subscription_created (7009)",
            "ops.resolve_parked by ops:operator",
            "queued (ops.resolve_parked)",
        )
    ]
    assert order == sorted(order)
    audit = await (await client.get("/ops/audit?type=ops.resolve_parked")).text()
    assert PARKED in audit
    assert "ops:operator" in audit
    assert "No entries match." in await (await client.get("/ops/audit?type=ops.retry_now")).text()

    again = await client.post(f"/ops/parked/{PARKED}/resolve", data={"csrf": csrf, "zgid": ORG})
    assert again.status == 404
    assert (await client.get("/ops/subscriptions/999")).status == 404
