"""Reconciliation from the console, against the billing and Developer Console simulators:
"reconcile now" runs a recorded, audited run and shows its drift; the runs list filters by date
and outcome and pages; a run held by another process answers busy; without [billing] the button
is off and says why, and a forged post changes nothing."""

from __future__ import annotations

import json

from broker.store import reconcile as rows
from broker.web.appkeys import reconcile_key
from tests.conftest import BrokerFactory
from tests.support.ops import OPS, audit_rows, sign_in
from tests.support.pages import STANDARD_CODE, WorldFactory


async def test_reconcile_now_runs_shows_the_drift_and_is_audited(make_world: WorldFactory):
    world = await make_world(ops=OPS)
    client = (await world.browser()).client
    csrf = await sign_in(client)
    world.sim.drop_all_webhooks()
    missed = world.sim.subscribe(STANDARD_CODE, quantity=3, zuid="61000000001", zgid="71000000001")

    response = await client.post("/ops/reconcile/run", data={"csrf": csrf})
    page = await response.text()

    assert response.status == 200
    assert str(response.url.path) == "/ops/reconcile/1"
    assert "done: 1 drift found, 1 deliveries queued" in page
    assert missed.subscription_id in page
    assert "missed event" in page
    (audited,) = await audit_rows(client, "ops.reconcile")
    assert audited["result"] == "done"
    assert json.loads(audited["detail"]) == {"run_id": 1, "drift": 1, "queued": 1}
    recorded = await world.rows("SELECT trigger, outcome FROM reconcile_runs")
    assert recorded == [{"trigger": "console", "outcome": "done"}]


async def test_runs_list_filters_by_outcome_and_date_and_pages(make_world: WorldFactory):
    world = await make_world(ops={**OPS, "page_size": 1})
    client = (await world.browser()).client
    csrf = await sign_in(client)
    for _ in range(2):
        assert (await client.post("/ops/reconcile/run", data={"csrf": csrf})).status == 200

    newest = await (await client.get("/ops/reconcile")).text()
    assert 'href="/ops/reconcile/2"' in newest
    assert 'href="/ops/reconcile/1"' not in newest
    assert "page=2" in newest
    older = await (await client.get("/ops/reconcile?page=2")).text()
    assert 'href="/ops/reconcile/1"' in older
    failed = await (await client.get("/ops/reconcile?state=failed")).text()
    assert "No runs match." in failed
    before = await (await client.get("/ops/reconcile?until=2001-01-01")).text()
    assert "No runs match." in before
    unknown = await client.get("/ops/reconcile?state=exploded")
    assert unknown.status == 400
    assert "unknown run outcome" in await unknown.text()
    assert (await client.get("/ops/reconcile/99")).status == 404


async def test_a_run_held_elsewhere_answers_busy(make_world: WorldFactory):
    world = await make_world(ops=OPS)
    client = (await world.browser()).client
    csrf = await sign_in(client)
    store = world.app[reconcile_key].store
    await store.write(lambda db: rows.take_lock(db, "another-process", now=0, lease=1e12))

    response = await client.post("/ops/reconcile/run", data={"csrf": csrf})

    assert str(response.url.path) == "/ops/reconcile"
    assert "busy: another run holds the lock" in await response.text()
    (audited,) = await audit_rows(client, "ops.reconcile")
    assert audited["result"] == "busy"


async def test_without_billing_the_button_is_off_and_says_why(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    page = await (await client.get("/ops/reconcile")).text()
    assert "reconciliation is off: the broker has no [billing] section" in page
    assert "disabled>Reconcile now" in page
    refused = await client.post("/ops/reconcile/run", data={"csrf": csrf})
    assert refused.status == 409
    forged = await client.post("/ops/reconcile/run", data={})
    assert forged.status == 403
    assert await audit_rows(client, "ops.reconcile") == []
