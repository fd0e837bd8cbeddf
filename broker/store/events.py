"""The webhook_events table's writes: each authenticated webhook recorded once, forever, before
it is processed, then what became of it. The only module that changes its rows."""

from __future__ import annotations

from dataclasses import dataclass

from broker.store.engine.tx import Tx


@dataclass(frozen=True)
class ReceivedEvent:
    """An authenticated webhook as it arrived, before anything is decided about it."""

    event_id: str
    event_type: str
    subscription_id: str | None
    received_at: float
    content_type: str
    request_id: str
    raw_body: bytes


def record_received(db: Tx, event: ReceivedEvent) -> bool:
    """Keep the webhook; False when its event id was received before (deduplicated forever)."""
    inserted = db.execute(
        "INSERT INTO webhook_events (event_id, event_type, subscription_id, received_at, outcome,"
        " content_type, request_id, raw_body) VALUES (?, ?, ?, ?, 'received', ?, ?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        [
            event.event_id,
            event.event_type,
            event.subscription_id,
            event.received_at,
            event.content_type,
            event.request_id,
            event.raw_body,
        ],
    ).rowcount
    return bool(inserted)


def record_outcome(db: Tx, event_id: str, outcome: str, reason: str | None) -> None:
    """What the pipeline made of the event, with why."""
    db.execute(
        "UPDATE webhook_events SET outcome = ?, reason = ? WHERE event_id = ?",
        [outcome, reason, event_id],
    )


def mark_found_by_reconcile(db: Tx, event_id: str, request_id: str) -> None:
    """The event was fed by a reconciliation run (``request_id``), not posted by billing."""
    db.execute(
        "UPDATE webhook_events SET source = 'reconcile' WHERE event_id = ? AND request_id = ?",
        [event_id, request_id],
    )
