"""The state pipeline: every billing input ends here, inside one store transaction.

A webhook, a landing-page visit (and later a hosted-page result or a reconciliation read) calls
these functions on the store's writer thread. They keep the newest billing snapshot per
subscription, work out who it belongs to, derive the desired platform state (``mapping``) and queue
a delivery only when that differs from what was last queued. Because they run in the same
transaction as the webhook's audit row, an acknowledged event and its delivery are durable together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from broker.config import LandingVerification, Settings
from broker.core.billing_events import BillingSubscription, WebhookEvent
from broker.core.billing_status import BillingStatus
from broker.core.event_kinds import EventKind, event_kind, why_not_applied
from broker.core.landing import LandingParams
from broker.core.mapping import Ignore, Park, PlatformState, Target, desired_state
from broker.store.correlation import (
    claim_subscription,
    is_verified,
    promote_claim,
    record_user,
    remember_customer,
    resolve_identity,
    stored_snapshot,
    subscription_row,
    unverified_claims,
    waiting_for_zgid,
)
from broker.store.sql import select_all, upsert


@dataclass(frozen=True)
class PipelineResult:
    outcome: str  # queued | unchanged | stale | parked | ignored | duplicate | refused
    reason: str | None = None
    subscription_id: str | None = None
    delivery_id: int | None = None

    @property
    def queued(self) -> bool:
        return self.delivery_id is not None


def ingest_webhook(
    db: sqlite_utils.Database,
    event: WebhookEvent,
    *,
    raw_body: bytes,
    content_type: str,
    request_id: str,
    settings: Settings,
    now: float,
) -> PipelineResult:
    """Record an authenticated webhook once, forever, and feed its snapshot to the pipeline."""
    subscription = event.data.subscription
    inserted = db.execute(
        "INSERT OR IGNORE INTO webhook_events (event_id, event_type, subscription_id, received_at,"
        " outcome, content_type, request_id, raw_body) VALUES (?, ?, ?, ?, 'received', ?, ?, ?)",
        [
            event.event_id,
            event.event_type,
            subscription.subscription_id if subscription else None,
            now,
            content_type,
            request_id,
            raw_body,
        ],
    ).rowcount
    if not inserted:
        return PipelineResult("duplicate", f"event {event.event_id} was already received")
    if subscription is None or event_kind(event.event_type) is not EventKind.SUBSCRIPTION:
        result = PipelineResult("ignored", why_not_applied(event.event_type))
    else:
        if event.event_type == "subscription_deleted":
            subscription = subscription.model_copy(update={"status": BillingStatus.DELETED})
        result = apply_snapshot(
            db,
            subscription,
            observed_at=event.created_time.timestamp() if event.created_time else now,
            source=f"webhook:{event.event_id}",
            settings=settings,
            now=now,
        )
    db.execute(
        "UPDATE webhook_events SET outcome = ?, reason = ? WHERE event_id = ?",
        [result.outcome, result.reason, event.event_id],
    )
    return result


def apply_snapshot(
    db: sqlite_utils.Database,
    subscription: BillingSubscription,
    *,
    observed_at: float,
    source: str,
    settings: Settings,
    now: float,
) -> PipelineResult:
    """Keep the snapshot if it is not older than the one we have, then reconcile."""
    subscription_id = subscription.subscription_id
    updated_at = subscription.updated_time.timestamp() if subscription.updated_time else observed_at
    row = subscription_row(db, subscription_id)
    deleted = BillingStatus.DELETED
    if row and row["status"] == deleted and subscription.status.lower() != deleted:
        # Billing cannot bring a deleted subscription back; a late event must not either.
        return PipelineResult(
            "stale", f"subscription {subscription_id} was deleted in billing", subscription_id
        )
    latest_credible = now + settings.webhooks.future_tolerance_seconds
    if updated_at > latest_credible:
        # Kept, it would make every real event after it look stale (the webhook edge refuses
        # these too; this covers billing reads).
        return PipelineResult(
            "refused",
            f"billing's updated_time for subscription {subscription_id} is in the future",
            subscription_id,
        )
    known = row["billing_updated_at"] if row else None
    # A stored time beyond belief (written before this check existed) orders nothing.
    if known is not None and known <= latest_credible and updated_at < known:
        return PipelineResult(
            "stale",
            f"billing already reported a newer state of subscription {subscription_id}",
            subscription_id,
        )
    remember_customer(db, subscription, now)
    upsert(
        db,
        "subscriptions",
        {
            "subscription_id": subscription_id,
            "customer_id": subscription.effective_customer_id(),
            "status": subscription.status.lower(),
            "plan_code": subscription.plan.plan_code if subscription.plan else None,
            "billing_json": subscription.model_dump_json(),
            "billing_updated_at": updated_at,
            "billing_source": source,
            "updated_at": now,
        },
        key="subscription_id",
    )
    promote_claim(db, subscription_id, settings)
    row = subscription_row(db, subscription_id)
    assert row is not None
    return _reconcile(db, row, subscription, settings=settings, now=now, cause=source)


def ingest_billing_read(
    db: sqlite_utils.Database,
    document: dict[str, Any],
    *,
    source: str,
    settings: Settings,
    now: float,
) -> PipelineResult:
    """A subscription read from the billing API (hosted-page result, page refresh): same path
    as a webhook, so the webhook that follows it changes nothing."""
    subscription = BillingSubscription.model_validate(document)
    return apply_snapshot(
        db, subscription, observed_at=now, source=source, settings=settings, now=now
    )


def reconcile(
    db: sqlite_utils.Database,
    subscription_id: str,
    *,
    settings: Settings,
    now: float,
    cause: str,
) -> PipelineResult:
    """Compare desired and queued platform state; queue a delivery when they differ."""
    row = subscription_row(db, subscription_id)
    subscription = stored_snapshot(row) if row else None
    if row is None or subscription is None:
        return PipelineResult("parked", "no billing state known yet", subscription_id)
    return _reconcile(db, row, subscription, settings=settings, now=now, cause=cause)


def _reconcile(
    db: sqlite_utils.Database,
    row: dict[str, Any],
    subscription: BillingSubscription,
    *,
    settings: Settings,
    now: float,
    cause: str,
) -> PipelineResult:
    subscription_id = subscription.subscription_id
    identity = resolve_identity(db, row, subscription)
    decision = desired_state(
        subscription,
        identity=identity,
        app_domain=settings.platform.app_domain,
        plans=settings.plans,
    )
    if isinstance(decision, Park):
        reason = decision.reason
        if unverified_claims(db, subscription_id):
            reason += (
                " (a Manage Subscription visit named this subscription, but its email "
                "does not match the billing customer's)"
            )
        _set(db, subscription_id, parked_reason=reason, decision="parked", updated_at=now)
        return PipelineResult("parked", reason, subscription_id)
    if isinstance(decision, Ignore):
        _set(db, subscription_id, parked_reason=None, decision="ignored", updated_at=now)
        return PipelineResult("ignored", decision.reason, subscription_id)
    assert isinstance(decision, Target)
    _set(db, subscription_id, parked_reason=None, decision=decision.why, updated_at=now)
    # States are stored as canonical JSON (sorted keys), so equal text is equal state.
    if row["queued_json"] == decision.state.to_json():
        return PipelineResult(
            "unchanged", "the platform already has or will get this state", subscription_id
        )
    if row["queued_json"] is None and not decision.state.active:
        return PipelineResult(
            "unchanged", "never sent to the platform; nothing to cancel", subscription_id
        )
    delivery_id = enqueue_delivery(db, subscription_id, decision.state, cause=cause, now=now)
    return PipelineResult("queued", decision.why, subscription_id, delivery_id)


def enqueue_delivery(
    db: sqlite_utils.Database,
    subscription_id: str,
    target: PlatformState,
    *,
    cause: str,
    now: float,
) -> int:
    """Queue the new target; a not-yet-started delivery of the same subscription is superseded.

    The call itself (Add, Modify or Cancel) is chosen at send time from what the platform last
    acknowledged, so only the newest target ever needs sending.
    """
    superseded = select_all(
        db,
        "SELECT id, uncertain FROM deliveries WHERE subscription_id = ? AND state = 'pending'",
        [subscription_id],
    )
    if superseded:
        db.execute(
            "UPDATE deliveries SET state = 'superseded', finished_at = ? "
            "WHERE subscription_id = ? AND state = 'pending'",
            [now, subscription_id],
        )
    uncertain = int(any(r["uncertain"] for r in superseded))
    target_json = target.to_json()
    cursor = db.execute(
        "INSERT INTO deliveries (subscription_id, target_json, cause, state, uncertain,"
        " created_at, next_attempt_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
        [subscription_id, target_json, cause, uncertain, now, now],
    )
    db.execute(
        "UPDATE subscriptions SET queued_json = ? WHERE subscription_id = ?",
        [target_json, subscription_id],
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


@dataclass(frozen=True)
class VisitResult:
    """What a Manage Subscription visit changed: the subscription it named, if any, and the
    parked subscriptions its verified zuid -> zgid binding released."""

    named: PipelineResult | None
    released: tuple[PipelineResult, ...] = ()

    @property
    def queued(self) -> bool:
        return any(r.queued for r in (self.named, *self.released) if r is not None)

    @property
    def outcome(self) -> str:
        return self.named.outcome if self.named else "no_subscription_named"


def record_landing_visit(
    db: sqlite_utils.Database,
    params: LandingParams,
    *,
    settings: Settings,
    now: float,
    verified_by: LandingVerification,
) -> VisitResult:
    """A Manage Subscription visit: remember the user; if verified, release what waited for
    this user's zgid and let a named subscription be claimed. Unverified visits do neither."""
    record_user(db, params, now, verified_by)
    if not is_verified(verified_by):
        return VisitResult(None)
    cause = f"landing:{params.zuid}"
    released = tuple(
        reconcile(db, subscription_id, settings=settings, now=now, cause=cause)
        for subscription_id in waiting_for_zgid(db, params.zuid)
    )
    if not params.subscription_id:
        return VisitResult(None, released)
    claim_subscription(db, params.subscription_id, params, settings, now, verified_by)
    named = reconcile(db, params.subscription_id, settings=settings, now=now, cause=cause)
    return VisitResult(named, released)


def _set(db: sqlite_utils.Database, subscription_id: str, **values: Any) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(
        f"UPDATE subscriptions SET {assignments} WHERE subscription_id = ?",  # noqa: S608 - column names are ours
        [*values.values(), subscription_id],
    )
