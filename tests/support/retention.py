"""What the retention and customer data tests share: a moment long after every test event, a
refund event, and a webhook fed straight through the store's pipeline at a chosen time."""

from __future__ import annotations

from functools import partial
from typing import Any

from broker.config import Settings
from broker.core.billing_events import parse_webhook_event
from broker.store.engine.backend import StoreBackend
from broker.store.pipeline import PipelineResult, ingest_webhook
from tests.support.basics import DECEMBER_FIRST_NOON, body_of

DAY = 86_400.0
NOW = DECEMBER_FIRST_NOON + 120 * DAY  # every test event's updated_time is long past


def refund_event(event_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "payment_refunded",
        "data": {
            "refund": {"refund_id": "9001", "amount": "5.00", "customer_id": customer_id},
            "payment": {"payment_id": "9002", "amount": "80.00", "customer_id": customer_id},
        },
    }


async def ingest(
    store: StoreBackend, settings: Settings, event: dict[str, Any], *, at: float
) -> PipelineResult:
    job = partial(
        ingest_webhook,
        event=parse_webhook_event(event),
        raw_body=body_of(event),
        content_type="application/json",
        request_id="req-1",
        settings=settings,
        now=at,
    )
    return await store.write(job)
