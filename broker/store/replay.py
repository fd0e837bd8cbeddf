"""Replaying stored webhook events through the state pipeline, for the console and
``broker events replay``. The event row exists, so a replay is not deduplicated away: its stored
body's snapshot goes through load, decide, write as a new input with source
``replay:{event_id}``. The stale rule still orders it (an older event never overrides a newer
snapshot), but what was last *queued* is forgotten, so the platform call is made again even when
the broker believes it already was (a dead delivery, a platform whose state was lost). Each
replay is audited in the same transaction. Functions run inside store write transactions."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from broker.config import Settings
from broker.core.billing_events import decode_json
from broker.core.decide import Outcome, Snapshot, decide, event_snapshot
from broker.core.event_kinds import EventKind, event_kind, why_not_applied
from broker.core.workflow_payload import read_webhook
from broker.errors import ClientError
from broker.store.engine.tx import Tx
from broker.store.ops_actions import Operator, audit
from broker.store.pipeline import PipelineResult, load_facts, write
from broker.store.sql import bytes_or_text, select_all, select_one, text, text_or_none

FORM_TYPE = "application/x-www-form-urlencoded"
# Never equal to a platform state's JSON: decide then queues the call as if none was queued.
FORGOTTEN = ""
# A body pruned under retention cannot be fed again; billing still holds the subscription.
PRUNED_BODY = (
    "its body was pruned (retention.webhook_body_days): nothing to replay;"
    " run a reconciliation to read the subscription from billing instead"
)
MAX_RANGE = 1000  # events one range replay may touch; narrow the range for more


def replay_event(
    db: Tx, who: Operator, event_id: str, *, settings: Settings, now: float
) -> PipelineResult:
    """Feed one stored event's snapshot through the pipeline again; LookupError if unknown."""
    row = select_one(
        db,
        "SELECT raw_body, content_type, body_pruned_at FROM webhook_events WHERE event_id = ?",
        [event_id],
    )
    if row is None:
        raise LookupError(f"no webhook event {event_id}")
    if row["body_pruned_at"] is not None:
        result = PipelineResult(Outcome.REFUSED, PRUNED_BODY)
    else:
        raw = bytes_or_text(row, "raw_body")
        result = _replayed(db, event_id, raw, text_or_none(row, "content_type"), settings, now)
    audit(
        db,
        who,
        "ops.replay",
        str(result.outcome),
        now=now,
        subscription_id=result.subscription_id,
        detail={"event_id": event_id, "reason": result.reason, "delivery_id": result.delivery_id},
    )
    return result


def event_ids_between(db: Tx, since: float, until: float) -> list[str]:
    """Stored events received in [since, until), oldest first (the order they happened)."""
    rows = select_all(
        db,
        "SELECT event_id FROM webhook_events WHERE received_at >= ? AND received_at < ?"
        " ORDER BY received_at, event_id LIMIT ?",
        [since, until, MAX_RANGE + 1],
    )
    return [text(row, "event_id") for row in rows]


def _replayed(
    db: Tx,
    event_id: str,
    raw: bytes | str,
    content_type: str | None,
    settings: Settings,
    now: float,
) -> PipelineResult:
    body = raw if isinstance(raw, bytes) else raw.encode()
    try:
        event = read_webhook(decode_json(_json_part(body, content_type)))
    except (ClientError, ValueError) as exc:
        return PipelineResult(Outcome.REFUSED, f"the stored body cannot be read again: {exc}")
    snapshot = event_snapshot(event, now=now)
    if snapshot is None or event_kind(event.event_type) is not EventKind.SUBSCRIPTION:
        return PipelineResult(Outcome.IGNORED, why_not_applied(event.event_type))
    snapshot = Snapshot(snapshot.subscription, snapshot.updated_at, f"replay:{event_id}")
    sid = snapshot.subscription.subscription_id
    facts = load_facts(db, sid, snapshot.subscription)
    if facts.stored is not None:
        facts = replace(facts, stored=replace(facts.stored, queued_json=FORGOTTEN))
    decision = decide(facts, snapshot, settings=settings, now=now, cause=snapshot.source)
    return write(db, decision, now=now)


def _json_part(body: bytes, content_type: str | None) -> bytes:
    """The JSON event: the body itself, or the single field of a form that carried it."""
    if content_type != FORM_TYPE:
        return body
    try:
        # Strict, as the webhook edge reads forms: a body it would refuse does not replay.
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("the form-encoded body is not valid UTF-8") from None
    if len(pairs) != 1:
        raise ValueError("a form-encoded body replays only when one field carries the event")
    return pairs[0][1].encode()
