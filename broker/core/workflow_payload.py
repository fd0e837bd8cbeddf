"""Zoho's workflow-rule webhooks, read as events. Pure, no I/O.

A webhook set up as a workflow rule's action with "Default Payload" [unsure: docs/contracts.md
§3] sends the entity at the top level, ``{"subscription": {...}}``, without ``event_id``,
``event_type`` or ``data``. The broker maps by state, so such a body is read as a subscription
event carrying that snapshot. Its event id is derived from what identifies the state:
``wf-{subscription_id}-{updated_time in UTC, e.g. 20261101T033000Z}``, so a resend of the same
payload is a duplicate and a later change (a newer ``updated_time``) is a new event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeGuard

from pydantic import ValidationError

from broker.core.billing_events import (
    BillingSubscription,
    WebhookEvent,
    describe_validation_errors,
    parse_webhook_event,
)
from broker.errors import InvalidPayload

# What the audit row and the log name a workflow payload that did not say its event type.
WORKFLOW_EVENT_TYPE = "subscription_workflow"


def read_webhook(document: object) -> WebhookEvent:
    """A webhook body in either shape: the event (``event_id``, ``event_type``, ``data``) or a
    workflow rule's entity at the top level (``{"subscription": {...}}``)."""
    if is_workflow_shape(document):
        document = as_event(document)
    return parse_webhook_event(document)


def is_workflow_shape(document: object) -> TypeGuard[dict[str, object]]:
    return (
        isinstance(document, dict)
        and "data" not in document
        and isinstance(document.get("subscription"), dict)
    )


def workflow_event_id(subscription_id: str, updated: datetime) -> str:
    moment = updated.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"wf-{subscription_id}-{moment:%Y%m%dT%H%M%S}{fraction}Z"


def as_event(document: Mapping[str, object]) -> dict[str, object]:
    """The workflow body in the event shape: its own ``event_id`` / ``event_type`` if it has
    them, else the derived id and ``subscription_workflow``."""
    body = document["subscription"]
    try:
        subscription = BillingSubscription.model_validate(body)
    except ValidationError as exc:
        raise InvalidPayload(
            "the workflow payload's subscription is not one we can read",
            hint="use the rule's Default Payload, or the Webhooks event payload",
            problems=[f"subscription.{line}" for line in describe_validation_errors(exc)],
        ) from None
    event_id = document.get("event_id")
    if event_id is None:
        if subscription.updated_time is None:
            raise InvalidPayload(
                "a workflow payload without subscription.updated_time cannot be told apart "
                "from a resend of an older state",
                hint="include updated_time in the rule's payload, or use the Webhooks event",
                problems=["subscription.updated_time: missing"],
            )
        event_id = workflow_event_id(subscription.subscription_id, subscription.updated_time)
    rest = {key: value for key, value in document.items() if key != "subscription"}
    return rest | {
        "event_id": event_id,
        "event_type": document.get("event_type") or WORKFLOW_EVENT_TYPE,
        "data": {"subscription": body},
    }
