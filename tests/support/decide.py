"""What the tests of the pipeline's decision share: the ids of one subscription, the facts
``store.pipeline.load_facts`` would load, snapshots of the webhook's subscription, and asking
``core.decide`` with fixed settings at a fixed moment. Pure: no database."""

from __future__ import annotations

from typing import Any

from broker.config import Settings
from broker.core.billing_events import BillingSubscription
from broker.core.decide import Decision, PipelineFacts, Snapshot, StoredSubscription, decide
from broker.core.mapping import PlatformState
from tests.support.basics import subscription_event

SID = "100000000000000001"
CUSTOMER = "900000000000000001"
ZUID = "60000000001"
ZGID = "70000000001"
NOW = 1793577600.0  # 2026-11-02T00:00:00Z
SETTINGS = Settings(
    platform={
        "app_domain": "testapp",
        "zapikey": "test-zapikey-0123456789abcdef",
        "base_url": "http://127.0.0.1:27100",
    },
)
LIVE_5_USERS = PlatformState(
    active=True,
    zgid=ZGID,
    zuid=ZUID,
    planid="1001",
    frequency="1",
    no_of_users="5",
    storage_units="0",
)
LIVE_5_USERS_JSON = (
    '{"active": true, "custom_pricing": {}, "frequency": "1", "no_of_users": "5", '
    '"planid": "1001", "storage_units": "0", "zgid": "70000000001", "zuid": "60000000001"}'
)


def snapshot(updated: str = "2026-11-01T00:00:00+0000", **changes: Any) -> Snapshot:
    document = subscription_event(updated=updated, **changes)["data"]["subscription"]
    subscription = BillingSubscription.model_validate(document)
    return Snapshot.of(subscription, observed_at=NOW, source="webhook:e1")


def stored(**columns: Any) -> StoredSubscription:
    row: dict[str, Any] = {
        "subscription_id": SID,
        "customer_id": CUSTOMER,
        "zgid": None,
        "zuid": None,
        "bound_email": None,
        "status": "live",
        "plan_code": "testapp_1001",
        "billing_json": None,
        "billing_updated_at": 1793491200.0,  # 2026-11-01T00:00:00Z
        "billing_source": "webhook:e0",
        "queued_json": None,
        "acked_json": None,
        "updated_at": 1793491200.0,
        "state": "applied",
        "reason": "status live",
    }
    return StoredSubscription(**{**row, **columns})


def facts(**fields: Any) -> PipelineFacts:
    return PipelineFacts(
        **{"subscription_id": SID, "stored": None, "customer": None, "binding": None, **fields}
    )


def decided(facts: PipelineFacts, incoming: Snapshot | None) -> Decision:
    return decide(facts, incoming, settings=SETTINGS, now=NOW, cause="webhook:e1")
