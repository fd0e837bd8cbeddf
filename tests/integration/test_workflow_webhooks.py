"""Zoho shapes through the real broker: workflow-rule webhooks, list items, plan warnings.

A workflow rule's "Default Payload" puts the subscription at the top level with no event id
(docs/contracts.md §3, [unsure]); the broker derives ``wf-{subscription_id}-{updated_time UTC}``
(docs/guarantees.md, "Where the contracts are silent"). Each test posts to the real app and
reads what it stored, as an operator would.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from broker.store.pipeline import ingest_billing_read
from broker.web.appkeys import clock_key, settings_key, store_key
from tests.conftest import db_rows, post_event
from tests.support.basics import subscription_event
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


Client = TestClient[web.Request, web.Application]
SID = "100000000000000001"


def workflow_body(updated: str, **changes: Any) -> dict[str, Any]:
    """A workflow rule's Default Payload: the entity at the top level, nothing else."""
    subscription = subscription_event(updated=updated, **changes)["data"]["subscription"]
    return {"subscription": subscription}


async def test_a_workflow_payload_is_applied_and_its_resend_is_a_duplicate(broker: Client) -> None:
    body = workflow_body("2026-11-01T09:00:00+0530")
    first = await post_event(broker, body)
    assert first.status == 200
    answer = await first.json()
    assert answer["event_id"] == f"wf-{SID}-20261101T033000Z"
    assert answer["outcome"] == "queued"

    again = await post_event(broker, body)
    assert again.status == 200
    assert (await again.json())["status"] == "duplicate"
    rows = await db_rows(broker, "SELECT event_id, event_type, outcome FROM webhook_events")
    assert rows == [
        {
            "event_id": f"wf-{SID}-20261101T033000Z",
            "event_type": "subscription_workflow",
            "outcome": "queued",
        }
    ]
    deliveries = await db_rows(broker, "SELECT target_json FROM deliveries")
    assert len(deliveries) == 1


async def test_a_later_workflow_payload_with_a_newer_updated_time_is_applied(
    broker: Client,
) -> None:
    await post_event(broker, workflow_body("2026-11-01T09:00:00+0530", quantity=5))
    later = await post_event(broker, workflow_body("2026-11-01T10:00:00+0530", quantity=8))
    answer = await later.json()
    assert answer["event_id"] == f"wf-{SID}-20261101T043000Z"
    assert answer["outcome"] == "queued"
    rows = await db_rows(broker, "SELECT billing_json FROM subscriptions")
    assert '"quantity":8' in rows[0]["billing_json"]


async def test_a_workflow_payload_keeps_its_own_event_id_and_type(broker: Client) -> None:
    body = workflow_body("2026-11-01T09:00:00+0530") | {
        "event_id": 4410000000123,
        "event_type": "subscription_upgraded",
    }
    answer = await (await post_event(broker, body)).json()
    assert answer["event_id"] == "4410000000123"
    rows = await db_rows(broker, "SELECT event_type FROM webhook_events")
    assert rows == [{"event_type": "subscription_upgraded"}]


async def test_a_workflow_payload_without_updated_time_is_a_clear_400(broker: Client) -> None:
    body = workflow_body("2026-11-01T09:00:00+0530")
    del body["subscription"]["updated_time"]
    response = await post_event(broker, body)
    assert response.status == 400
    answer = await response.json()
    assert "without subscription.updated_time" in answer["message"]
    assert await db_rows(broker, "SELECT * FROM webhook_events") == []


async def test_a_workflow_payload_with_an_unreadable_subscription_names_the_field(
    broker: Client,
) -> None:
    body = workflow_body("2026-11-01T09:00:00+0530")
    body["subscription"]["subscription_id"] = "12ab"
    response = await post_event(broker, body)
    assert response.status == 400
    text = await response.text()
    assert "subscription.subscription_id" in text
    assert await db_rows(broker, "SELECT * FROM subscriptions") == []


async def test_a_plan_interval_mismatch_is_answered_stored_and_logged(broker: Client) -> None:
    event = subscription_event(plan_code="testapp_1001_Y", interval_unit="months")
    with capture_logs() as logs:
        response = await post_event(broker, event)
    answer = await response.json()
    assert answer["outcome"] == "queued"
    assert answer["warning"].startswith("plan code 'testapp_1001_Y' says yearly")
    warned = [line for line in logs if line["event"] == "billing_plan_interval_mismatch"]
    assert [(line["log_level"], line["subscription_id"]) for line in warned] == [("warning", SID)]
    events = await db_rows(broker, "SELECT reason FROM webhook_events")
    assert events[0]["reason"] == f"status live; warning: {answer['warning']}"
    subs = await db_rows(broker, "SELECT state, reason FROM subscriptions")
    assert subs[0]["state"] == "applied"
    assert subs[0]["reason"] == f"status live; warning: {answer['warning']}"
    deliveries = await db_rows(broker, "SELECT target_json FROM deliveries")
    assert '"frequency": "4"' in deliveries[0]["target_json"]  # still follows the plan code


async def test_a_list_item_read_after_the_webhook_leaves_the_stored_plan(broker: Client) -> None:
    updated = "2026-11-01T09:00:00+0530"
    await post_event(broker, subscription_event(updated=updated, quantity=7))
    item = {  # a GET /subscriptions row, as the billing simulator lists it
        "subscription_id": SID,
        "subscription_number": "SUB-00001",
        "name": "Test plan",
        "status": "live",
        "plan_code": "testapp_1001",
        "plan_name": "Pro",
        "amount": "100.00",
        "interval": 1,
        "interval_unit": "months",
        "current_term_ends_at": "2026-11-30",
        "created_time": "2026-11-01T09:00:00+0530",
        "updated_time": updated,
        "customer_id": "900000000000000001",
        "customer_name": "Example Org",
        "email": "owner@example.com",
    }
    app = broker.app
    result = await app[store_key].write(
        partial(
            ingest_billing_read,
            document=item,
            source="reconcile:list",
            settings=app[settings_key],
            now=app[clock_key](),
        )
    )
    assert result.outcome == "unchanged"
    rows = await db_rows(
        broker, "SELECT plan_code, billing_json, billing_source FROM subscriptions"
    )
    assert rows[0]["plan_code"] == "testapp_1001"
    assert '"quantity":7' in rows[0]["billing_json"]
    assert rows[0]["billing_source"].startswith("webhook:")
