"""Reconciliation's pure half: reading billing's list answers and finding drift (no I/O).

``GET /events`` documents its list items as ``event_id``, ``event_type`` and ``event_time``
only (specs/events.yml, list-of-events-response): ``listed_item`` reads one, and ``EventOrder``
learns from their times which way the list runs (the order is not documented). The payload is
documented on ``GET /events/{id}`` only, as a JSON string in ``payload``: ``listed_event``
reads it (or the webhook body's own keys, should billing send them). ``drift_of`` compares one
``GET /subscriptions`` list item with what the broker stored; a list item lacks the plan
object, so it only says *whether* to read the subscription in full, never what the platform
should hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from broker.core.billing_events import (
    BillingSubscription,
    WebhookEvent,
    describe_validation_errors,
)
from broker.core.billing_status import BillingStatus
from broker.core.event_kinds import EventKind, event_kind
from broker.core.ids import ZOHO_ID
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
    # The broker holds it as billing (live, trial, ...); billing's full list lacks it and
    # GET /subscriptions/{id} answers 404.
    MISSING_IN_BILLING = "missing_in_billing"


class MissingState(StrEnum):
    """What became of a subscription billing answered 404 for (``billing_missing.state``)."""

    REPORTED = "reported"  # reconcile.on_missing_in_billing = report: nothing sent
    ASKED = "asked"  # waiting in /ops for an operator's Cancel
    CANCELLED = "cancelled"  # marked gone; the platform's Cancel went through the pipeline


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


@dataclass(frozen=True)
class ListedEvent:
    """One item of the events list: enough to decide whether to read the event in full."""

    event_id: str
    event_type: str
    at: datetime  # event_time; a bare day is read as its midnight UTC

    @property
    def day(self) -> date:
        return self.at.date()


def event_instant(value: object) -> datetime | None:
    """``event_time`` as an aware datetime: ``2016-06-05T18:28:20-0700`` [doc] or a bare
    day ``2026-06-01`` [seen]; None if it is neither."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def listed_item(item: Mapping[str, object]) -> ListedEvent | None:
    """An events-list item, or None when it lacks a usable id, type or time."""
    event_id, event_type = item.get("event_id"), item.get("event_type")
    at = event_instant(item.get("event_time"))
    if not isinstance(event_id, str | int) or isinstance(event_id, bool) or at is None:
        return None
    if ZOHO_ID.fullmatch(str(event_id)) is None:  # it goes into GET /events/{id}
        return None
    if not isinstance(event_type, str) or not event_type:
        return None
    return ListedEvent(str(event_id), event_type, at)


@dataclass
class EventOrder:
    """Which way the events list runs, learnt from successive ``event_time`` values."""

    newest_first: bool | None = None  # None until two different times were seen
    last: datetime | None = None
    contradicted: bool = field(default=False)

    def see(self, at: datetime) -> None:
        if self.last is not None and at != self.last:
            descending = at < self.last
            if self.newest_first is None:
                self.newest_first = descending
            elif self.newest_first != descending:
                self.contradicted = True
        self.last = at


def is_subscription_type(event_type: str) -> bool:
    return event_kind(event_type) is EventKind.SUBSCRIPTION


def listed_event(item: Mapping[str, object]) -> WebhookEvent | None:
    """The webhook event an events-API item describes, or None if it cannot be read."""
    document: object = item
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


def event_body(item: Mapping[str, object]) -> bytes:
    """The bytes to keep as the event's raw body: billing's own payload string when given."""
    payload = item.get("payload")
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps({k: v for k, v in item.items() if k != "webhooks"}).encode()


def is_subscription_event(event: WebhookEvent) -> bool:
    return event_kind(event.event_type) is EventKind.SUBSCRIPTION


def is_ours(item: Mapping[str, object], app_domain: str, our_products: frozenset[str]) -> bool:
    """Whether a list item may be this app's, by the pipeline's own rule (``core.ours``): its
    plan code maps, or it is not known to be another product's (no plan code: read it to see)."""
    listed_plan = item.get("plan")
    plan: dict[str, object] = listed_plan if isinstance(listed_plan, dict) else {}
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


def gone_document(billing_json: str | None, subscription_id: str) -> dict[str, object]:
    """The stored snapshot marked as gone: status ``deleted``, which billing cannot bring back
    (``decide`` keeps it deleted) and which calls for the platform's Cancel."""
    document: dict[str, object] = json.loads(billing_json) if billing_json else {}
    document["subscription_id"] = subscription_id
    document["status"] = BillingStatus.DELETED.value
    return document


def listed_subscription(item: Mapping[str, object]) -> BillingSubscription | list[str]:
    """A subscriptions-list item read as a subscription, or the problems that keep it from
    reading (each ``path: message``, never its values)."""
    try:
        return BillingSubscription.model_validate(item)
    except ValidationError as exc:
        return describe_validation_errors(exc)


def drift_of(
    item: Mapping[str, object] | BillingSubscription, stored: StoredView | None
) -> Drift | None:
    """How a list item (or a subscription read in full) differs from what is stored (None: the
    same, nothing to read)."""
    if isinstance(item, BillingSubscription):
        listed = item
    else:
        try:
            listed = BillingSubscription.model_validate(item)
        except ValidationError:
            return None
    sid = listed.subscription_id
    status = str(listed.status)
    listed_code = (listed.model_extra or {}).get("plan_code")
    code = (listed_code if isinstance(listed_code, str) else None) or (
        listed.plan.plan_code if listed.plan else None
    )
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


# Zoho Billing keeps events for 180 days (docs/contracts.md §4, "Limits" [unsure]): an older
# day asked for would silently return less.
EVENT_WINDOW_DAYS = 180


def within_event_window(asked: date, today: date) -> tuple[date, str | None]:
    """The first day the event backfill can read, and, when ``asked`` is older, why it moved."""
    oldest = today - timedelta(days=EVENT_WINDOW_DAYS)
    if asked >= oldest:
        return asked, None
    return oldest, (
        f"Zoho Billing keeps events for {EVENT_WINDOW_DAYS} days, so events before "
        f"{oldest.isoformat()} cannot be read back (asked from {asked.isoformat()}): the backfill "
        f"starts at {oldest.isoformat()} and the state sweep re-reads every subscription's "
        "current state instead, within the day's billing budget."
    )
