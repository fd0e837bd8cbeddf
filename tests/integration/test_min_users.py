"""platform.min_users: the contract does not say which no_of_users the platform accepts, and the
platform simulator (like a cautious reading of it) refuses 0. By default (1) a subscription whose
plan quantity is below the floor is parked with the reason, shown in /ops and `broker parked list`
and counted in the parked gauge, and nothing is sent; once billing corrects the quantity it is
sent. Set to 0, every quantity is sent as billing has it, and the platform has the last word."""

from __future__ import annotations

from broker.simulators.platform import PlatformSimulator
from broker.store.queries import org_subscriptions
from broker.web.appkeys import settings_key, store_key
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import APP_DOMAIN, ZAPIKEY, ZGID, eventually, subscription_event
from tests.support.cli import run_cli
from tests.support.ops import OPS, delivery_ids, sign_in, wait_for_state

SUB_ID = "100000000000000077"
REASON = "plan quantity 0 is below platform.min_users (1)"


async def test_a_quantity_of_0_is_parked_with_its_reason_and_never_sent(
    make_broker: BrokerFactory, simulator: PlatformSimulator, tmp_path, capsys
):
    client = await make_broker(ops=OPS)
    await sign_in(client)
    response = await post_event(
        client, subscription_event(subscription_id=SUB_ID, quantity=0, event_id="7701")
    )
    answer = await response.json()
    assert response.status == 200
    assert answer["outcome"] == "parked"
    assert REASON in answer["reason"]
    assert await delivery_ids(client, SUB_ID) == []
    assert simulator.calls == []

    listed = await (await client.get("/ops/parked")).text()
    assert SUB_ID in listed
    assert REASON in listed
    metrics = await (await client.get("/metrics")).text()
    assert "broker_parked_subscriptions 1.0" in metrics
    assert 'broker_webhooks_total{outcome="parked"} 1.0' in metrics
    code, out, _ = run_cli(capsys, "parked", "list", "--db", str(tmp_path / "broker.db"))
    assert code == 0
    assert SUB_ID in out
    assert REASON in out

    # Billing corrects the quantity: the subscription leaves the parked list and is added.
    response = await post_event(
        client, subscription_event(subscription_id=SUB_ID, quantity=2, event_id="7702")
    )
    assert (await response.json())["outcome"] == "queued"
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    (call,) = simulator.calls
    assert (call.method, call.zgid) == ("POST", ZGID)
    assert call.body is not None
    assert call.body["no_of_users"] == "2"
    assert SUB_ID not in await (await client.get("/ops/parked")).text()


async def test_an_operator_cannot_resolve_a_quantity_park_by_choosing_an_org(
    make_broker: BrokerFactory, tmp_path, capsys, monkeypatch
):
    """Choosing an org releases a subscription parked for its org, never one parked for its
    quantity: the console and the command say to correct the quantity in billing instead."""
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    await post_event(client, subscription_event(subscription_id=SUB_ID, quantity=0))

    listed = await (await client.get("/ops/parked")).text()
    assert f"/ops/parked/{SUB_ID}/resolve" not in listed
    assert "fix in billing" in listed
    form = await client.get(f"/ops/parked/{SUB_ID}/resolve")
    assert form.status == 409
    assert "correct the quantity in billing" in await form.text()
    done = await client.post(
        f"/ops/parked/{SUB_ID}/resolve",
        data={"csrf": csrf, "zgid": "70000000042", "zuid": "600000042", "confirm": "yes"},
    )
    assert done.status == 409
    assert "parked for its plan quantity, not its org" in await done.text()

    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", APP_DOMAIN)
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", ZAPIKEY)
    code, _, err = run_cli(
        capsys,
        "parked",
        "resolve",
        SUB_ID,
        "--zgid",
        "70000000042",
        "--zuid",
        "600000042",
        "--yes",
        "--db",
        str(tmp_path / "broker.db"),
    )
    assert code == 2
    assert "correct the quantity in billing" in err
    assert await delivery_ids(client, SUB_ID) == []
    rows = await db_rows(
        client, "SELECT zgid FROM subscriptions WHERE subscription_id = ?", [SUB_ID]
    )
    assert rows == [{"zgid": None}]


async def test_the_page_tells_the_customer_a_quantity_park_is_about_users_not_their_org(
    make_broker: BrokerFactory,
):
    client = await make_broker()
    await post_event(client, subscription_event(subscription_id=SUB_ID, quantity=0))
    app = client.app
    assert app is not None
    (view,) = await app[store_key].read(lambda db: org_subscriptions(db, ZGID, app[settings_key]))
    assert view.sync_state == "parked"
    assert "number of users is below what the app accepts" in view.sync_text
    assert "organisation" not in view.sync_text


async def test_min_users_0_sends_a_quantity_of_0_and_the_platform_has_the_last_word(
    make_broker: BrokerFactory, simulator: PlatformSimulator
):
    client = await make_broker(platform={"min_users": 0})
    response = await post_event(
        client, subscription_event(subscription_id=SUB_ID, quantity=0, event_id="7703")
    )
    assert (await response.json())["outcome"] == "queued"
    await eventually(lambda: delivery_ids(client, SUB_ID), message="an Add queued")
    (delivery_id,) = await delivery_ids(client, SUB_ID)
    # The simulator refuses no_of_users 0 (a 4xx), so the delivery ends as a dead letter.
    await wait_for_state(client, delivery_id, "dead")
    (call,) = simulator.calls
    assert call.method == "POST"
    assert call.body is not None
    assert call.body["no_of_users"] == "0"
    assert not call.applied
    assert 400 <= call.status < 500
