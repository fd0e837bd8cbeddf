"""One subscription's whole story for the operator: what billing sent, what the broker kept,
every platform call and every page or console action, in time order. Reads only.

Who owns it is the pipeline's answer (``PipelineFacts.owner`` over the facts
``pipeline.load_facts`` reads), not the row's own zgid/zuid columns, which hold only a believed
claim or an operator's choice: billing's custom fields win there, and so they do here."""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.mapping import Identity
from broker.core.subscription_state import SubscriptionState
from broker.store.engine.tx import Tx
from broker.store.pipeline import load_facts
from broker.store.sql import (
    number,
    select_all,
    select_one,
    text,
    text_or_none,
    whole,
    whole_or_none,
)


@dataclass(frozen=True)
class StoryEntry:
    at: float
    kind: str  # event | delivery | attempt | action
    title: str
    detail: str  # redact before showing


@dataclass(frozen=True)
class SubscriptionStory:
    subscription_id: str
    status: str | None
    zuid: str | None
    zgid: str | None
    customer_id: str | None
    state: SubscriptionState | None  # None: no decision marked it yet
    reason: str | None  # why it is in that state
    snapshot: str | None  # billing's last snapshot, as kept
    acked: str | None  # what the platform last acknowledged
    entries: list[StoryEntry]


def subscription_story(db: Tx, subscription_id: str) -> SubscriptionStory | None:
    row = select_one(
        db,
        "SELECT status, zuid, zgid, customer_id, state, reason, billing_json,"
        " acked_json FROM subscriptions WHERE subscription_id = ?",
        [subscription_id],
    )
    # At equal times an action comes before the delivery it queued (the sort is stable).
    entries = [*_events(db, subscription_id), *_actions(db, subscription_id)]
    entries += _calls(db, subscription_id)
    if row is None and not entries:
        return None
    entries.sort(key=lambda entry: entry.at)
    owner = owner_of(db, subscription_id) if row else Identity()

    def column(name: str) -> str | None:
        return text_or_none(row, name) if row else None

    state = column("state")
    return SubscriptionStory(
        subscription_id=subscription_id,
        status=column("status"),
        zuid=owner.zuid,
        zgid=owner.zgid,
        customer_id=column("customer_id"),
        state=SubscriptionState(state) if state else None,
        reason=column("reason"),
        snapshot=column("billing_json"),
        acked=column("acked_json"),
        entries=entries,
    )


def owner_of(db: Tx, subscription_id: str) -> Identity:
    """The zuid and zgid the pipeline would act for, from the same facts it reads."""
    return load_facts(db, subscription_id).owner()


def _events(db: Tx, sid: str) -> list[StoryEntry]:
    rows = select_all(
        db,
        "SELECT event_id, event_type, received_at, outcome, reason FROM webhook_events"
        " WHERE subscription_id = ?",
        [sid],
    )
    return [
        StoryEntry(
            number(r, "received_at"),
            "event",
            f"{text(r, 'event_type')} ({text(r, 'event_id')}): {text(r, 'outcome')}",
            text_or_none(r, "reason") or "",
        )
        for r in rows
    ]


def _calls(db: Tx, sid: str) -> list[StoryEntry]:
    deliveries = select_all(
        db,
        "SELECT id, created_at, cause, state, target_json FROM deliveries"
        " WHERE subscription_id = ?",
        [sid],
    )
    attempts = select_all(
        db,
        "SELECT a.delivery_id, a.started_at, a.method, a.status, a.outcome, a.error"
        " FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.subscription_id = ?",
        [sid],
    )
    return [
        StoryEntry(
            number(d, "created_at"),
            "delivery",
            f"delivery {whole(d, 'id')} queued ({text(d, 'cause')}), now {text(d, 'state')}",
            text(d, "target_json"),
        )
        for d in deliveries
    ] + [
        StoryEntry(
            number(a, "started_at"),
            "attempt",
            f"delivery {whole(a, 'delivery_id')}: {text(a, 'method')}"
            f" → {whole_or_none(a, 'status') or 'no answer'} ({text(a, 'outcome')})",
            text_or_none(a, "error") or "",
        )
        for a in attempts
    ]


def _actions(db: Tx, sid: str) -> list[StoryEntry]:
    rows = select_all(
        db,
        "SELECT at, zuid, action, result, detail FROM audit_log WHERE subscription_id = ?",
        [sid],
    )
    return [
        StoryEntry(
            number(r, "at"),
            "action",
            f"{text(r, 'action')} by {text(r, 'zuid')}: {text(r, 'result')}",
            text_or_none(r, "detail") or "",
        )
        for r in rows
    ]
