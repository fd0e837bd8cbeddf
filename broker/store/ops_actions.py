"""What the operator console and commands change: dead letters sent again, a pending delivery
made due now, a parked subscription given its org by hand; each one audited in the same
transaction as the change it records. Functions run inside store write transactions."""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import Settings
from broker.core.billing_events import BillingSubscription
from broker.core.mapping import parked_for_quantity
from broker.core.subscription_state import SubscriptionState
from broker.store import dead_letters, outbox, pipeline, subscriptions
from broker.store.audit import record_action
from broker.store.engine.tx import Tx
from broker.store.sql import select_one, text, text_or_none

OPS_ORG = "ops"  # the audit log's zgid column for the operator's own actions


class OpsRefused(Exception):
    """The action does not apply (a delivery that is not pending, a subscription not parked)."""


@dataclass(frozen=True)
class Operator:
    name: str
    request_id: str | None = None


def audit(
    db: Tx,
    who: Operator,
    action: str,
    result: str,
    *,
    now: float,
    subscription_id: str | None = None,
    detail: dict[str, object] | None = None,
    zgid: str = OPS_ORG,
) -> None:
    """One audit row under the operator's name; ``zgid`` files it under the org it concerns."""
    record_action(
        db,
        at=now,
        zuid=f"ops:{who.name}",
        zgid=zgid,
        action=action,
        result=result,
        subscription_id=subscription_id,
        detail=detail,
        request_id=who.request_id,
    )


def retry_dead(
    db: Tx, who: Operator, delivery_ids: list[int], *, now: float
) -> dead_letters.Requeued:
    """Send these dead letters again (a newer delivery supersedes one instead); one audit row
    per delivery, so each subscription's story shows it."""
    requeued: list[int] = []
    superseded: list[int] = []
    for delivery_id in delivery_ids:
        done = dead_letters.retry_dead(db, now=now, delivery_id=delivery_id)
        requeued += done.requeued
        superseded += done.superseded
        row = select_one(db, "SELECT subscription_id FROM deliveries WHERE id = ?", [delivery_id])
        audit(
            db,
            who,
            "ops.retry_dead",
            "requeued" if done.requeued else "superseded",
            now=now,
            subscription_id=text(row, "subscription_id") if row else None,
            detail={"delivery_id": delivery_id},
        )
    return dead_letters.Requeued(requeued, superseded)


def retry_now(db: Tx, who: Operator, delivery_id: int, *, now: float) -> None:
    """Make a pending delivery due at once, instead of waiting out its backoff."""
    row = select_one(
        db, "SELECT state, subscription_id FROM deliveries WHERE id = ?", [delivery_id]
    )
    if row is None:
        raise LookupError(f"no delivery with id {delivery_id}")
    if row["state"] != outbox.DeliveryState.PENDING:
        raise OpsRefused(
            f"delivery {delivery_id} is {text(row, 'state')}, not pending: only a pending delivery "
            "can be sent now (a dead letter is retried instead)"
        )
    outbox.make_due(db, delivery_id, now=now)
    audit(
        db,
        who,
        "ops.retry_now",
        "ok",
        now=now,
        subscription_id=text(row, "subscription_id"),
        detail={"delivery_id": delivery_id},
    )


def quantity_park_refusal(subscription_id: str) -> str:
    """Why resolving by hand cannot release a subscription parked for its quantity."""
    return (
        f"subscription {subscription_id} is parked for its plan quantity, not its org: "
        "choosing an org would not send it; correct the quantity in billing (or lower "
        "platform.min_users) and billing's next event or reconciliation sends it"
    )


def resolve_parked(
    db: Tx,
    who: Operator,
    subscription_id: str,
    *,
    zgid: str,
    zuid: str | None,
    settings: Settings,
    now: float,
) -> pipeline.PipelineResult:
    """Bind a parked subscription to the org the operator chose, then let the pipeline decide
    again (billing's own ids, when they arrive, still win: see core.identity)."""
    row = select_one(
        db,
        "SELECT state, reason, zuid FROM subscriptions WHERE subscription_id = ?",
        [subscription_id],
    )
    if row is None:
        raise LookupError(f"no subscription {subscription_id}")
    if row["state"] != SubscriptionState.PARKED:
        raise OpsRefused(f"subscription {subscription_id} is not parked")
    if parked_for_quantity(text_or_none(row, "reason") or ""):
        raise OpsRefused(quantity_park_refusal(subscription_id))
    subscriptions.assign_org(db, subscription_id, zgid=zgid, zuid=zuid)
    result = pipeline.decide_again(
        db, subscription_id, settings=settings, now=now, cause="ops.resolve_parked"
    )
    audit(
        db,
        who,
        "ops.resolve_parked",
        str(result.outcome),
        now=now,
        subscription_id=subscription_id,
        detail={"zgid": zgid, "zuid": zuid, "reason": result.reason, "was": row["reason"]},
    )
    return result


def duplicate_cancelled(
    db: Tx,
    who: Operator,
    document: BillingSubscription,
    *,
    zgid: str,
    detail: dict[str, object],
    settings: Settings,
    now: float,
) -> bool:
    """Billing's answer to the operator's cancel of a duplicate, through the pipeline like any
    billing read, audited under the org in the same transaction. True when a delivery was queued
    (none for a duplicate the platform never had)."""
    result = pipeline.ingest_billing_read(
        db, document, source="ops:cancel_duplicate", settings=settings, now=now
    )
    audit(
        db,
        who,
        "ops.cancel_duplicate",
        "ok",
        now=now,
        subscription_id=document.subscription_id,
        detail=detail,
        zgid=zgid,
    )
    return result.queued
