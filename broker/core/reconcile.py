"""Reconciliation's pure half: reading billing's list answers and finding drift (no I/O).

The events API lists each event either as the webhook body's own keys or with that body as a
JSON string in ``payload`` (docs/contracts.md §3; the simulator sends both): ``listed_event``
reads either. ``drift_of`` compares one ``GET /subscriptions`` list item with what the broker
stored; a list item lacks the plan object, so it only says *whether* to read the subscription
in full, never what the platform should hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from broker.core.billing_events import BillingSubscription, WebhookEvent
from broker.core.event_kinds import EventKind, event_kind
from broker.core.mapping import parse_plan_code
from broker.core.ours import Ownership, ownership


class DriftKind(StrEnum):
    """Why billing and the broker disagree about one subscription (a metric label)."""

    MISSED_EVENT = "missed_event"  # billing logged a subscription event the broker never got
    UNKNOWN = "unknown"  # billing has a subscription the broker never heard of
    STATUS = "status"  # billing's status differs from the stored one
    PLAN = "plan"  # billing's plan code differs from the stored one
    CHANGED = "changed"  # same status and plan, but billing changed it since (or backdated)
    PARKED_RESOLVED = "parked_resolved"  # a parked subscription's customer now names its org


@dataclass(frozen=True)
class Drift:
    """One difference found, and what reconciliation did (or, in a dry run, would do)."""

    subscription_id: str
    kind: DriftKind
    billing: str  # billing's side, for the table: "live testapp_1002"
    broker: str  # the broker's side
    action: str = ""  # the pipeline's outcome: queued, unchanged, parked, ...
    delivery_id: int | None = None


@dataclass(frozen=True)
class StoredView:
    """What the broker stored about one subscription, as the sweep compares it."""

    subscription_id: str
    status: str | None
    plan_code: str | None
    updated_time: datetime | None  # billing's updated_time in the stored snapshot
    updated_at: float | None  # the stored snapshot's ordering time (billing_updated_at)


def listed_event(item: dict[str, Any]) -> WebhookEvent | None:
    """The webhook event an events-API item describes, or None if it cannot be read."""
    document: Any = item
    payload = item.get("payload")
    if isinstance(payload, str):
        try:
            document = json.loads(payload)
        except ValueError:
            document = item
    elif isinstance(payload, dict):
        document = payload
    try:
        return WebhookEvent.model_validate(document)
    except ValidationError:
        return None


def event_body(item: dict[str, Any]) -> bytes:
    """The bytes to keep as the event's raw body: billing's own payload string when given."""
    payload = item.get("payload")
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps({k: v for k, v in item.items() if k != "webhooks"}).encode()


def is_subscription_event(event: WebhookEvent) -> bool:
    return event_kind(event.event_type) is EventKind.SUBSCRIPTION


def is_ours(item: dict[str, Any], app_domain: str, our_products: frozenset[str]) -> bool:
    """Whether a list item may be this app's, by the pipeline's own rule (``core.ours``): its
    plan code maps, or it is not known to be another product's (no plan code: read it to see)."""
    listed_plan = item.get("plan")
    plan: dict[str, Any] = listed_plan if isinstance(listed_plan, dict) else {}
    code = item.get("plan_code") or plan.get("plan_code")
    if not code:
        return True
    product = item.get("product_id") or plan.get("product_id")
    owner = ownership(
        plan_maps=parse_plan_code(str(code), app_domain) is not None,
        product_id=str(product) if product not in (None, "") else None,
        our_products=our_products,
    )
    return owner is not Ownership.OTHER_PRODUCT


def drift_of(item: dict[str, Any], stored: StoredView | None) -> Drift | None:
    """How a list item differs from what is stored (None: the same, nothing to read)."""
    try:
        listed = BillingSubscription.model_validate(item)
    except ValidationError:
        return None
    sid = listed.subscription_id
    status = listed.status.lower()
    code = item.get("plan_code") or (listed.plan.plan_code if listed.plan else None)
    billing = " ".join(x for x in (status, code) if x)
    if stored is None:
        return Drift(sid, DriftKind.UNKNOWN, billing, "never heard of")
    broker = " ".join(x for x in (stored.status, stored.plan_code) if x) or "no billing state"
    if status != (stored.status or ""):
        return Drift(sid, DriftKind.STATUS, billing, broker)
    if code and code != stored.plan_code:
        return Drift(sid, DriftKind.PLAN, billing, broker)
    updated = listed.updated_time
    if updated != stored.updated_time:
        when = updated.isoformat() if updated else "at an unknown time"
        return Drift(sid, DriftKind.CHANGED, f"{billing} updated {when}", broker)
    return None
