"""Reconciliation's pure comparison: reading an events-API item in either shape, and what a
``GET /subscriptions`` list item says about the stored subscription (docs/contracts.md §3-4)."""

from __future__ import annotations

import json
from datetime import datetime

from broker.core.reconcile import DriftKind, StoredView, drift_of, event_body, is_ours, listed_event

BODY = {
    "event_id": "2000000000001",
    "event_type": "subscription_created",
    "event_time": "2026-06-10",
    "created_time": "2026-06-10T12:00:00+0530",
    "data": {"subscription": {"subscription_id": "900", "status": "live"}},
}
ITEM = {
    "subscription_id": "900",
    "status": "live",
    "plan_code": "testapp_1001",
    "updated_time": "2026-06-10T12:00:00+0530",
}
UPDATED = datetime.fromisoformat("2026-06-10T12:00:00+05:30")


def stored(**changes: object) -> StoredView:
    values: dict[str, object] = {
        "subscription_id": "900",
        "status": "live",
        "plan_code": "testapp_1001",
        "updated_time": UPDATED,
        "updated_at": UPDATED.timestamp(),
    }
    return StoredView(**(values | changes))  # type: ignore[arg-type]


def test_event_is_read_from_its_payload_string_or_its_own_keys() -> None:
    as_string = {"event_id": "2000000000001", "payload": json.dumps(BODY), "webhooks": []}

    from_payload, from_keys = listed_event(as_string), listed_event(BODY)

    assert from_payload is not None
    assert from_keys is not None
    assert from_payload.event_id == from_keys.event_id == "2000000000001"
    assert from_payload.data.subscription is not None
    assert from_payload.data.subscription.subscription_id == "900"
    assert event_body(as_string) == json.dumps(BODY).encode()
    assert listed_event({"payload": "not json", "event_type": ""}) is None


def test_list_item_equal_to_the_stored_subscription_is_no_drift() -> None:
    assert drift_of(ITEM, stored()) is None


def test_list_item_differences_name_their_kind() -> None:
    assert drift_of(ITEM, None).kind is DriftKind.UNKNOWN  # type: ignore[union-attr]
    assert drift_of(ITEM, stored(status="cancelled")).kind is DriftKind.STATUS  # type: ignore[union-attr]
    assert drift_of(ITEM, stored(plan_code="testapp_1002")).kind is DriftKind.PLAN  # type: ignore[union-attr]
    backdated = ITEM | {"updated_time": "2026-06-01T12:00:00+0530"}
    assert drift_of(backdated, stored()).kind is DriftKind.CHANGED  # type: ignore[union-attr]


def test_only_this_app_domains_plans_are_swept() -> None:
    ours = frozenset({"903000000045027"})
    other = {"plan_code": "otherapp_1001", "product_id": "903000000099999"}
    assert is_ours(ITEM, "testapp", ours)
    assert not is_ours(ITEM | other, "testapp", ours)
    assert is_ours({"subscription_id": "900"}, "testapp", ours)  # no plan code: read it to see
