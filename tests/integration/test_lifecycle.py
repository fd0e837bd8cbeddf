"""A subscription's whole life, end to end: billing webhooks in, Developer Console calls out.

Every test drives the real broker app against the real platform simulator. A call the simulator
*applied* answered 200 Success, which it only does when the zapikey rode in the query string and
every mandatory body field was a non-empty JSON string, so ``applied`` is checked on each call.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.simulators.platform import PlatformSimulator, RecordedCall
from tests.conftest import db_rows, post_event
from tests.support.basics import (
    STORAGE_MONTHLY,
    STORAGE_YEARLY,
    ZGID,
    ZUID,
    eventually,
    subscription_event,
    updated_time,
)
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


SUB_ID = "100000000000000001"
FINISHED = ("done", "superseded", "dead")


# --- helpers -----------------------------------------------------------------------------------


async def settled(broker: Any) -> list[dict[str, Any]]:
    """Wait until no delivery is pending or on the wire; return the deliveries, none dead."""

    async def finished() -> bool:
        rows = await db_rows(broker, "SELECT state FROM deliveries")
        return all(row["state"] in FINISHED for row in rows)

    await eventually(finished, message="every delivery to finish")
    rows = await db_rows(broker, "SELECT id, state, action, last_error FROM deliveries ORDER BY id")
    assert all(row["state"] != "dead" for row in rows), rows
    return rows


async def send(broker: Any, payload: dict[str, Any], *, outcome: str | None = None) -> Any:
    """Post one webhook, check it was accepted (with ``outcome`` if given), wait for delivery."""
    response = await post_event(broker, payload)
    assert response.status == 200, await response.text()
    answer = await response.json()
    if outcome is not None:
        assert answer["outcome"] == outcome, answer
    await settled(broker)
    return answer


def summary(simulator: PlatformSimulator) -> list[tuple[str, str, str]]:
    """(method, zgid, planid) of every call the platform received, all of them applied."""
    for call in simulator.calls:
        assert (call.status, call.applied) == (200, True), call
    return [(call.method, call.zgid, call.planid) for call in simulator.calls]


def plan_body(
    *,
    no_of_users: str = "5",
    frequency: str = "1",
    storage_units: str = "0",
    subscription_id: str = SUB_ID,
    zuid: str = ZUID,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "zuid": zuid,
        "no_of_users": no_of_users,
        "frequency": frequency,
        "subscription_id": subscription_id,
        "storage_units": storage_units,
        **extra,
    }


CANCEL_BODY = {"zuid": ZUID, "subscription_id": SUB_ID}


def assert_all_strings(call: RecordedCall) -> None:
    assert call.body is not None
    scalars = {k: v for k, v in call.body.items() if k != "custom_pricing_json"}
    assert all(isinstance(value, str) for value in scalars.values()), call.body


async def start_live(broker: Any, simulator: PlatformSimulator, **changes: Any) -> None:
    """A new subscription on plan 1001 (or as changed), added on the platform."""
    await send(broker, subscription_event("subscription_created", **changes), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)
    assert summary(simulator) == [
        ("POST", ZGID, changes.get("plan_code", "testapp_1001").removeprefix("testapp_"))
    ]


# --- creation and activation -------------------------------------------------------------------


async def test_subscription_created_is_one_add_with_string_body(broker, simulator):
    answer = await send(broker, subscription_event("subscription_created"), outcome="queued")

    assert answer["status"] == "accepted"
    await simulator.wait_until(lambda s: len(s.calls) == 1)
    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert simulator.calls[0].body == plan_body()
    assert_all_strings(simulator.calls[0])
    assert simulator.subscriptions[ZGID].active


async def test_activation_after_created_in_same_state_adds_only_once(broker, simulator):
    await start_live(broker, simulator)

    await send(broker, subscription_event("subscription_activation"), outcome="unchanged")

    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert len(await db_rows(broker, "SELECT id FROM deliveries")) == 1


# --- plan changes ------------------------------------------------------------------------------


async def test_upgrade_is_a_modify_at_the_new_planid_with_new_quantity(broker, simulator):
    await start_live(broker, simulator)

    upgraded = subscription_event(
        "subscription_upgraded",
        plan_code="testapp_2002",
        quantity=12,
        previous_attribute={
            "status": "live",
            "quantity": 5,
            "plan_code": "testapp_1001",
            "plan_id": "5000000001",
            "plan_name": "Pro",
        },
    )
    await send(broker, upgraded, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator) == [("POST", ZGID, "1001"), ("PUT", ZGID, "2002")]
    assert simulator.calls[1].body == plan_body(no_of_users="12")
    assert_all_strings(simulator.calls[1])
    assert simulator.subscriptions[ZGID].planid == "2002"


async def test_downgrade_is_a_modify_at_the_lower_planid(broker, simulator):
    await start_live(broker, simulator, plan_code="testapp_2002", quantity=8)

    downgraded = subscription_event(
        "subscription_downgraded",
        plan_code="testapp_1001",
        quantity=3,
        previous_attribute={"status": "live", "quantity": 8, "plan_code": "testapp_2002"},
    )
    await send(broker, downgraded, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("PUT", ZGID, "1001")
    assert simulator.calls[1].body == plan_body(no_of_users="3")


async def test_renewal_without_change_makes_no_call(broker, simulator):
    await start_live(broker, simulator)

    await send(broker, subscription_event("subscription_renewed"), outcome="unchanged")

    assert summary(simulator) == [("POST", ZGID, "1001")]


# --- cancellation, reactivation, expiry --------------------------------------------------------


async def test_cancellation_is_a_delete_at_the_cancelled_planid(broker, simulator):
    await start_live(broker, simulator)

    await send(broker, subscription_event("subscription_cancelled", status="cancelled"))
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("DELETE", ZGID, "1001")
    assert simulator.calls[1].body == CANCEL_BODY
    assert not simulator.subscriptions[ZGID].active


async def test_cancellation_after_upgrade_deletes_the_current_not_the_first_plan(broker, simulator):
    await start_live(broker, simulator)
    await send(broker, subscription_event("subscription_upgraded", plan_code="testapp_2002"))

    await send(broker, subscription_event("subscription_cancelled", status="cancelled"))
    await simulator.wait_until(lambda s: len(s.calls) == 3)

    assert summary(simulator)[1:] == [("PUT", ZGID, "2002"), ("DELETE", ZGID, "2002")]


async def test_scheduled_cancellation_keeps_the_subscription_on_platform(broker, simulator):
    await start_live(broker, simulator)

    scheduled = subscription_event("subscription_cancellation_scheduled", status="non_renewing")
    await send(broker, scheduled, outcome="unchanged")

    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert simulator.subscriptions[ZGID].active


async def test_reactivation_after_cancel_adds_again(broker, simulator):
    await start_live(broker, simulator)
    await send(broker, subscription_event("subscription_cancelled", status="cancelled"))

    await send(broker, subscription_event("subscription_reactivated"), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 3)

    assert summary(simulator) == [
        ("POST", ZGID, "1001"),
        ("DELETE", ZGID, "1001"),
        ("POST", ZGID, "1001"),
    ]
    assert simulator.calls[2].body == plan_body()
    assert simulator.subscriptions[ZGID].active


async def test_expiry_is_a_delete(broker, simulator):
    await start_live(broker, simulator)

    await send(broker, subscription_event("subscription_expired", status="expired"))
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("DELETE", ZGID, "1001")
    assert simulator.calls[1].body == CANCEL_BODY


async def test_cancel_of_a_subscription_never_sent_makes_no_call(broker, simulator):
    await send(
        broker,
        subscription_event("subscription_cancelled", status="cancelled"),
        outcome="unchanged",
    )

    assert simulator.calls == []
    assert await db_rows(broker, "SELECT id FROM deliveries") == []


# --- trials ------------------------------------------------------------------------------------


async def test_trial_subscription_is_added(broker, simulator):
    await send(broker, subscription_event("subscription_created", status="trial"))
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert simulator.calls[0].body == plan_body()


async def test_trial_falling_to_free_plan_modifies_to_planid_free(broker, simulator):
    await start_live(broker, simulator, status="trial")

    to_free = subscription_event(
        "subscription_activation",
        plan_code="testapp_FREE",
        quantity=1,
        previous_attribute={"status": "trial", "plan_code": "testapp_1001", "quantity": 5},
    )
    await send(broker, to_free, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("PUT", ZGID, "FREE")
    assert simulator.calls[1].body == plan_body(no_of_users="1")


# --- dunning and unpaid ------------------------------------------------------------------------


async def test_dunning_keeps_the_subscription_on_platform(broker, simulator):
    await start_live(broker, simulator)

    await send(
        broker, subscription_event("subscription_renewed", status="dunning"), outcome="unchanged"
    )

    assert summary(simulator) == [("POST", ZGID, "1001")]


async def test_cancelled_from_dunning_is_a_delete(broker, simulator):
    await start_live(broker, simulator)
    await send(broker, subscription_event("subscription_renewed", status="dunning"))

    cancelled = subscription_event("subscription_cancelled", status="cancelled_from_dunning")
    await send(broker, cancelled, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("DELETE", ZGID, "1001")
    assert simulator.calls[1].body == CANCEL_BODY


async def test_unpaid_with_on_unpaid_keep_makes_no_call(make_broker, simulator):
    broker = await make_broker(plans={"on_unpaid": "keep"})
    await start_live(broker, simulator)

    await send(
        broker, subscription_event("subscription_unpaid", status="unpaid"), outcome="unchanged"
    )

    assert summary(simulator) == [("POST", ZGID, "1001")]


async def test_unpaid_with_on_unpaid_cancel_is_a_delete(make_broker, simulator):
    broker = await make_broker(plans={"on_unpaid": "cancel"})
    await start_live(broker, simulator)

    await send(broker, subscription_event("subscription_unpaid", status="unpaid"), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("DELETE", ZGID, "1001")
    assert simulator.calls[1].body == CANCEL_BODY


# --- org move ----------------------------------------------------------------------------------

NEW_ZGID, NEW_ZUID = "70000000002", "60000000002"


async def test_org_move_cancels_at_the_old_org_then_adds_at_the_new_one(broker, simulator):
    """cf_zgid edited on the billing customer: the next subscription event carries the new org."""
    await start_live(broker, simulator)

    moved = subscription_event("subscription_renewed", zgid=NEW_ZGID, zuid=NEW_ZUID)
    await send(broker, moved, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 3)

    assert summary(simulator) == [
        ("POST", ZGID, "1001"),
        ("DELETE", ZGID, "1001"),
        ("POST", NEW_ZGID, "1001"),
    ]
    assert simulator.calls[1].body == CANCEL_BODY, "the old org's owner, at the old org"
    assert simulator.calls[2].body == plan_body(zuid=NEW_ZUID)
    assert not simulator.subscriptions[ZGID].active
    assert simulator.subscriptions[NEW_ZGID].active
    assert [z for z, held in simulator.subscriptions.items() if held.active] == [NEW_ZGID]

    (move,) = await db_rows(broker, "SELECT id, state FROM deliveries WHERE id = 2")
    assert move["state"] == "done"
    tried = await db_rows(
        broker, "SELECT method, url, outcome FROM attempts WHERE delivery_id = 2 ORDER BY id"
    )
    assert [(a["method"], a["outcome"]) for a in tried] == [
        ("DELETE", "success"),
        ("POST", "success"),
    ]
    assert f"/subscription/{ZGID}/" in tried[0]["url"]
    assert f"/subscription/{NEW_ZGID}/" in tried[1]["url"]
    (row,) = await db_rows(broker, "SELECT acked_json FROM subscriptions")
    assert json.loads(row["acked_json"])["zgid"] == NEW_ZGID


async def test_org_move_then_cancellation_cancels_at_the_new_org(broker, simulator):
    await start_live(broker, simulator)
    await send(broker, subscription_event(zgid=NEW_ZGID, zuid=NEW_ZUID), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 3)

    cancelled = subscription_event(
        "subscription_cancelled", status="cancelled", zgid=NEW_ZGID, zuid=NEW_ZUID
    )
    await send(broker, cancelled, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 4)

    assert summary(simulator)[3] == ("DELETE", NEW_ZGID, "1001")
    assert simulator.calls[3].body == {"zuid": NEW_ZUID, "subscription_id": SUB_ID}
    assert not any(held.active for held in simulator.subscriptions.values())


# --- pause and resume --------------------------------------------------------------------------


async def test_pause_with_pause_policy_keep_makes_no_call(make_broker, simulator):
    broker = await make_broker(plans={"pause_policy": "keep"})
    await start_live(broker, simulator)

    await send(
        broker, subscription_event("subscription_paused", status="paused"), outcome="unchanged"
    )

    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert simulator.subscriptions[ZGID].active


async def test_pause_with_pause_policy_suspend_deletes_then_resume_adds_again(
    make_broker, simulator
):
    broker = await make_broker(plans={"pause_policy": "suspend"})
    await start_live(broker, simulator)

    await send(broker, subscription_event("subscription_paused", status="paused"), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)
    assert not simulator.subscriptions[ZGID].active

    await send(broker, subscription_event("subscription_resumed", status="live"), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 3)

    assert summary(simulator) == [
        ("POST", ZGID, "1001"),
        ("DELETE", ZGID, "1001"),
        ("POST", ZGID, "1001"),
    ]
    assert simulator.calls[1].body == CANCEL_BODY
    assert simulator.calls[2].body == plan_body()
    assert simulator.subscriptions[ZGID].active


# --- deletion ----------------------------------------------------------------------------------


async def test_deleted_subscription_is_cancelled_though_payload_says_live(broker, simulator):
    await start_live(broker, simulator)

    deleted = subscription_event("subscription_deleted", status="live")
    await send(broker, deleted, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("DELETE", ZGID, "1001")
    assert simulator.calls[1].body == CANCEL_BODY


async def test_older_event_after_deletion_does_not_add_it_back(broker, simulator):
    older = updated_time()
    await start_live(broker, simulator)
    await send(broker, subscription_event("subscription_deleted", status="live"))
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    late = subscription_event("subscription_activation", status="live", updated=older)
    await send(broker, late, outcome="stale")

    assert summary(simulator) == [("POST", ZGID, "1001"), ("DELETE", ZGID, "1001")]
    assert not simulator.subscriptions[ZGID].active


@pytest.mark.parametrize("late_updated", ["same", "newer"])
async def test_no_event_after_deletion_adds_it_back(broker, simulator, late_updated):
    """Billing cannot bring a deleted subscription back, whatever the late event's timestamp.

    Zoho may not bump updated_time when it deletes, so a late event can carry the same one.
    """
    same = updated_time()
    await start_live(broker, simulator, updated=same)
    await send(broker, subscription_event("subscription_deleted", status="live", updated=same))
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    late_time = same if late_updated == "same" else updated_time()
    late = subscription_event("subscription_activation", status="live", updated=late_time)
    answer = await send(broker, late, outcome="stale")

    assert "deleted" in answer["reason"]
    assert summary(simulator) == [("POST", ZGID, "1001"), ("DELETE", ZGID, "1001")]
    assert not simulator.subscriptions[ZGID].active


# --- frequency, storage, custom pricing --------------------------------------------------------


async def test_yearly_plan_code_sends_frequency_4(broker, simulator):
    yearly = subscription_event(plan_code="testapp_1001_Y", interval_unit="years")
    await send(broker, yearly, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert simulator.calls[0].body == plan_body(frequency="4")


@pytest.mark.parametrize(
    ("plan_code", "storage_code", "frequency"),
    [("testapp_1001", STORAGE_MONTHLY, "1"), ("testapp_1001_Y", STORAGE_YEARLY, "4")],
)
async def test_storage_addon_quantity_becomes_storage_units(
    broker, simulator, plan_code, storage_code, frequency
):
    event = subscription_event(
        plan_code=plan_code,
        addons=[{"addon_code": storage_code, "name": "Storage", "price": 2.0, "quantity": 3}],
    )
    await send(broker, event, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    assert simulator.calls[0].body == plan_body(frequency=frequency, storage_units="3")


async def test_storage_addon_change_alone_is_a_modify(broker, simulator):
    await start_live(broker, simulator)

    more = subscription_event(
        "subscription_upgraded", addons=[{"addon_code": STORAGE_MONTHLY, "quantity": 2}]
    )
    await send(broker, more, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    assert summary(simulator)[1] == ("PUT", ZGID, "1001")
    assert simulator.calls[1].body == plan_body(storage_units="2")


LICENCE_ADDONS = [
    {"addon_code": "testapp_admin", "quantity": 2},
    {"addon_code": "testapp_std", "quantity": 10},
    {"addon_code": STORAGE_MONTHLY, "quantity": 1},
]
PRICING_KEYS = {"testapp_admin": "SuperAdminLicense", "testapp_std": "StandardLicense"}


async def test_addon_pricing_keys_become_custom_pricing_json_object(make_broker, simulator):
    broker = await make_broker(plans={"addon_pricing_keys": PRICING_KEYS})

    await send(broker, subscription_event(addons=LICENCE_ADDONS), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    pricing = {"StandardLicense": "10", "SuperAdminLicense": "2"}
    assert simulator.calls[0].body == plan_body(storage_units="1", custom_pricing_json=pricing)
    assert simulator.subscriptions[ZGID].custom_pricing_json == pricing


async def test_custom_pricing_json_is_a_string_when_configured(make_broker, simulator):
    broker = await make_broker(
        plans={"addon_pricing_keys": PRICING_KEYS}, platform={"custom_pricing_format": "string"}
    )

    await send(broker, subscription_event(addons=LICENCE_ADDONS), outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    body = simulator.calls[0].body
    assert body is not None
    assert isinstance(body["custom_pricing_json"], str)
    assert json.loads(body["custom_pricing_json"]) == {
        "StandardLicense": "10",
        "SuperAdminLicense": "2",
    }
    assert_all_strings(simulator.calls[0])


# --- events that are not ours ------------------------------------------------------------------


async def test_foreign_plan_is_acknowledged_ignored_and_kept(make_broker, simulator):
    broker = await make_broker(platform={"product_id": "903000000045027"})
    event = subscription_event(
        plan_code="otherapp_1001", event_id="81000001", product_id="903000000099999"
    )

    answer = await send(broker, event, outcome="ignored")

    assert "otherapp_1001" in answer["reason"]
    stored = await db_rows(
        broker, "SELECT outcome, reason FROM webhook_events WHERE event_id = ?", ["81000001"]
    )
    assert [row["outcome"] for row in stored] == ["ignored"]
    assert "otherapp_1001" in stored[0]["reason"]
    assert await db_rows(broker, "SELECT id FROM deliveries") == []
    assert simulator.calls == []


async def test_payment_event_without_subscription_is_acknowledged_ignored_and_kept(
    broker, simulator
):
    payment = {
        "event_id": "81000002",
        "event_type": "payment_thankyou",
        "event_source": "web",
        "event_time": "2026-11-21",
        "created_time": "2026-11-21T10:00:00+0530",
        "data": {"payment": {"payment_id": "555", "amount": 100.0, "customer_id": "9"}},
    }

    answer = await send(broker, payment, outcome="ignored")

    assert answer["reason"]
    stored = await db_rows(
        broker,
        "SELECT event_type, outcome, subscription_id FROM webhook_events WHERE event_id = ?",
        ["81000002"],
    )
    assert stored == [
        {"event_type": "payment_thankyou", "outcome": "ignored", "subscription_id": None}
    ]
    assert simulator.calls == []


def carrying_a_live_subscription(event_type: str, event_id: str) -> dict[str, Any]:
    """A non-subscription event whose payload also holds a live subscription (as Zoho's do)."""
    event = subscription_event(event_type, event_id=event_id)
    event["data"]["payment"] = {"payment_id": "555", "amount": 100.0, "customer_id": "9"}
    return event


@pytest.mark.parametrize(
    "event_type",
    [
        "payment_thankyou",
        "payment_declined",
        "invoice_notification",
        "card_expiring",
        "trial_expiring",
        "billing_date_changed",
    ],
)
async def test_non_subscription_event_carrying_a_live_subscription_makes_no_call(
    broker, simulator, event_type
):
    """docs/guarantees.md promises payment, invoice, credit note and card events never drive a
    call."""
    event = carrying_a_live_subscription(event_type, "81000010")

    answer = await send(broker, event, outcome="ignored")

    assert event_type in answer["reason"]
    assert "subscription_" in answer["reason"], "the reason says which events do count"
    stored = await db_rows(
        broker, "SELECT event_type, outcome FROM webhook_events WHERE event_id = ?", ["81000010"]
    )
    assert stored == [{"event_type": event_type, "outcome": "ignored"}]
    assert await db_rows(broker, "SELECT id FROM deliveries") == []
    assert await db_rows(broker, "SELECT subscription_id FROM subscriptions") == []
    assert simulator.calls == []


@pytest.mark.parametrize("event_type", ["payment_refunded", "creditnote_created"])
async def test_money_event_carrying_a_live_subscription_is_recorded_and_makes_no_call_by_default(
    broker, simulator, event_type
):
    """Refunds and credit notes are money events: recorded for the operator, and with the default
    ``[money_events]`` (record) they never drive a call nor replace a snapshot."""
    event = carrying_a_live_subscription(event_type, "81000011")

    answer = await send(broker, event, outcome="ignored")

    assert answer["reason"].startswith(f"{event_type}: ")
    assert "recorded; access unchanged" in answer["reason"]
    stored = await db_rows(
        broker, "SELECT event_type, verdict FROM money_events WHERE event_id = ?", ["81000011"]
    )
    assert stored == [{"event_type": event_type, "verdict": "record"}]
    assert await db_rows(broker, "SELECT id FROM deliveries") == []
    assert await db_rows(broker, "SELECT subscription_id FROM subscriptions") == []
    assert simulator.calls == []


async def test_notice_event_with_a_changed_plan_does_not_modify_but_the_next_change_does(
    broker, simulator
):
    """trial_expiring / billing_date_changed carry the subscription but never drive a call, and
    their snapshot must not make a later (slightly older) subscription event look stale."""
    await start_live(broker, simulator)
    notice = subscription_event("billing_date_changed", quantity=9, updated=updated_time(90000))
    await send(broker, notice, outcome="ignored")
    assert summary(simulator) == [("POST", ZGID, "1001")]

    upgraded = subscription_event("subscription_upgraded", quantity=7, updated=updated_time(80000))
    await send(broker, upgraded, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 2)
    assert summary(simulator) == [("POST", ZGID, "1001"), ("PUT", ZGID, "1001")]
    assert simulator.calls[1].body == plan_body(no_of_users="7")


# --- duplicates, ids, ordering -----------------------------------------------------------------


async def test_duplicate_event_reaches_platform_once(broker, simulator):
    event = subscription_event(event_id="81000003")
    await send(broker, event, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    answer = await send(broker, event, outcome="duplicate")

    assert answer["status"] == "duplicate"
    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert len(await db_rows(broker, "SELECT id FROM deliveries")) == 1
    assert len(await db_rows(broker, "SELECT event_id FROM webhook_events")) == 1


async def test_resend_of_a_cancelled_subscriptions_creation_does_not_add_it_back(broker, simulator):
    created = subscription_event(event_id="81000004")
    await send(broker, created)
    await send(broker, subscription_event("subscription_cancelled", status="cancelled"))
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    await send(broker, created, outcome="duplicate")

    assert summary(simulator) == [("POST", ZGID, "1001"), ("DELETE", ZGID, "1001")]


async def test_ids_sent_as_big_json_numbers_are_kept_exactly(broker, simulator):
    event_id = 123456789012345678
    plan_id = 987654321098765432
    subscription_id = 100000000000000123
    payload = subscription_event(subscription_id=str(subscription_id))
    payload["event_id"] = event_id
    payload["data"]["subscription"]["subscription_id"] = subscription_id
    payload["data"]["subscription"]["plan"]["plan_id"] = plan_id
    assert f'"event_id": {event_id}' in json.dumps(payload)  # a JSON number, not a string

    answer = await send(broker, payload, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    assert answer["event_id"] == str(event_id)
    stored = await db_rows(broker, "SELECT event_id, subscription_id FROM webhook_events")
    assert stored == [{"event_id": str(event_id), "subscription_id": str(subscription_id)}]
    rows = await db_rows(broker, "SELECT billing_json FROM subscriptions")
    assert json.loads(rows[0]["billing_json"])["plan"]["plan_id"] == str(plan_id)
    assert simulator.calls[0].body == plan_body(subscription_id=str(subscription_id))


async def test_stale_event_after_newer_one_changes_nothing(broker, simulator):
    older, newer = updated_time(), updated_time()
    await start_live(broker, simulator, updated=older)
    await send(
        broker,
        subscription_event("subscription_upgraded", plan_code="testapp_2002", updated=newer),
    )
    await simulator.wait_until(lambda s: len(s.calls) == 2)

    stale = subscription_event("subscription_renewed", plan_code="testapp_1001", updated=older)
    answer = await send(broker, stale, outcome="stale")

    assert answer["reason"]
    assert summary(simulator) == [("POST", ZGID, "1001"), ("PUT", ZGID, "2002")]
    assert simulator.subscriptions[ZGID].planid == "2002"
    stored = await db_rows(
        broker, "SELECT outcome FROM webhook_events WHERE event_id = ?", [stale["event_id"]]
    )
    assert stored == [{"outcome": "stale"}]


async def test_upgrade_arriving_before_creation_ends_upgraded_with_one_add(broker, simulator):
    created = subscription_event("subscription_created", updated=updated_time())
    upgraded = subscription_event(
        "subscription_upgraded", plan_code="testapp_2002", quantity=9, updated=updated_time()
    )

    await send(broker, upgraded, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)
    await send(broker, created, outcome="stale")

    assert summary(simulator) == [("POST", ZGID, "2002")]
    assert simulator.calls[0].body == plan_body(no_of_users="9")
    org = simulator.subscriptions[ZGID]
    assert (org.planid, org.no_of_users, org.active) == ("2002", "9", True)


# --- identity ----------------------------------------------------------------------------------


async def test_zuid_and_zgid_are_read_from_custom_field_hash(broker, simulator):
    event = subscription_event(zuid=None, zgid=None)
    customer = event["data"]["subscription"]["customer"]
    assert customer["custom_fields"] == []
    customer["custom_field_hash"] = {
        "cf_zuid": ZUID,
        "cf_zuid_unformatted": ZUID,
        "cf_zgid": ZGID,
        "cf_zgid_unformatted": ZGID,
    }

    await send(broker, event, outcome="queued")
    await simulator.wait_until(lambda s: len(s.calls) == 1)

    assert summary(simulator) == [("POST", ZGID, "1001")]
    assert simulator.calls[0].body == plan_body()


async def test_subscription_without_identity_is_parked_not_sent(broker, simulator):
    answer = await send(broker, subscription_event(zuid=None), outcome="parked")

    assert answer["reason"].startswith("zuid unknown")
    assert simulator.calls == []
    assert await db_rows(broker, "SELECT id FROM deliveries") == []
