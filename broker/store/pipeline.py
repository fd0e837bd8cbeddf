"""The state pipeline's reads and writes: every billing input ends here, in one transaction.

A webhook, a billing read (page action, checkout return, page refresh) and a landing visit each
take the same three steps on the store's writer thread: ``load_facts`` reads what the decision
needs into one ``PipelineFacts``; ``core.decide`` decides, without I/O, what to keep and what to
send; ``write`` writes that decision. Because this runs in the same transaction as the webhook's
audit row, an acknowledged event and its delivery are durable together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import structlog

from broker.config import Settings
from broker.core.billing_events import BillingSubscription, WebhookEvent
from broker.core.decide import (
    Decision,
    Outcome,
    PipelineFacts,
    Snapshot,
    decide,
    event_snapshot,
)
from broker.core.event_kinds import EventKind, event_kind, why_not_applied
from broker.core.identity import resolve_identity
from broker.core.mapping import PAUSE_NOT_CHOSEN, Identity
from broker.core.money_events import MoneyKind, money_kind
from broker.store import events, subscriptions
from broker.store.engine.tx import Tx
from broker.store.events import ReceivedEvent
from broker.store.identity import (
    claims_on,
    customer_row,
    save_customer,
    subscription_row,
    user_row,
)
from broker.store.money_events import NEW_TERM_EVENTS, record_money_event
from broker.store.org_index import org_billing_subscriptions
from broker.store.outbox import enqueue_delivery
from broker.store.products import learned_products
from broker.store.subscriptions import KeptSnapshot

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    outcome: Outcome
    reason: str | None = None
    subscription_id: str | None = None
    delivery_id: int | None = None
    warning: str | None = None  # a vendor mistake the operator should see
    money_kind: str | None = None  # a money event's kind (refund, chargeback, ...), for the metric
    money_verdict: str | None = None  # record | withhold

    @property
    def audit_reason(self) -> str | None:
        """The webhook_events ``reason``: the outcome's reason, then any warning."""
        if self.warning is None:
            return self.reason
        return f"{self.reason}; warning: {self.warning}" if self.reason else self.warning

    @property
    def queued(self) -> bool:
        return self.delivery_id is not None


def load_facts(
    db: Tx, subscription_id: str, incoming: BillingSubscription | None = None
) -> PipelineFacts:
    """What ``decide`` needs about one subscription: the stored row, the billing customer (the
    one ``incoming`` names, else the stored one), the binding of the user it names, the claims."""
    stored = subscription_row(db, subscription_id)
    customer_id = (
        incoming.effective_customer_id() if incoming else (stored.customer_id if stored else None)
    )
    customer = customer_row(db, customer_id)
    snapshot = incoming or (stored.snapshot if stored else None)
    bound = stored.bound if stored else Identity()
    zuid = resolve_identity(snapshot, customer, bound, None).zuid
    binding = user_row(db, zuid) if zuid else None
    zgid = resolve_identity(snapshot, customer, bound, binding).zgid
    return PipelineFacts(
        subscription_id,
        stored,
        customer,
        binding=binding,
        claims=claims_on(db, subscription_id),
        learned_products=learned_products(db),
        siblings=org_billing_subscriptions(db, zgid, other_than=subscription_id) if zgid else (),
    )


def write(db: Tx, decision: Decision, *, now: float) -> PipelineResult:
    """Write what ``decide`` chose, in the order the rows depend on each other.

    A kept snapshot's row carries the decision and the queued target in the same upsert: on
    PostgreSQL every statement is a round trip, and these were three per webhook.
    """
    sid = decision.subscription_id
    if decision.customer is not None:
        save_customer(db, decision.customer)
    folded = decision.keep is not None
    if decision.keep is not None:
        subscription = decision.keep.subscription
        kept = KeptSnapshot(
            subscription_id=sid,
            customer_id=subscription.effective_customer_id(),
            status=subscription.status.lower(),
            plan_code=subscription.plan.plan_code if subscription.plan else None,
            billing_json=subscription.model_dump_json(),
            billing_updated_at=decision.keep.updated_at,
            billing_source=decision.keep.source,
            updated_at=now,
            mark=decision.mark,
            queued_json=decision.send.to_json() if decision.send is not None else None,
        )
        subscriptions.keep_snapshot(db, kept)
    if decision.bind is not None:
        subscriptions.bind(db, decision.bind)
    if decision.mark is not None and not folded:
        subscriptions.mark(db, sid, decision.mark, now=now)
    delivery_id = None
    if decision.send is not None:
        delivery_id = enqueue_delivery(
            db, sid, decision.send, cause=decision.cause, now=now, queued_written=folded
        )
    if decision.warning is not None:
        log.warning(
            "pause_policy_not_chosen"
            if PAUSE_NOT_CHOSEN in decision.warning
            else "billing_plan_interval_mismatch",
            subscription_id=sid,
            cause=decision.cause,
            warning=decision.warning,
        )
    return PipelineResult(decision.outcome, decision.reason, sid, delivery_id, decision.warning)


def ingest_webhook(
    db: Tx,
    event: WebhookEvent,
    *,
    raw_body: bytes,
    content_type: str,
    request_id: str,
    settings: Settings,
    now: float,
) -> PipelineResult:
    """Record an authenticated webhook once, forever, and feed its snapshot to the pipeline."""
    incoming = event_snapshot(event, now=now)
    received = ReceivedEvent(
        event_id=event.event_id,
        event_type=event.event_type,
        subscription_id=incoming.subscription.subscription_id if incoming else None,
        received_at=now,
        content_type=content_type,
        request_id=request_id,
        raw_body=raw_body,
    )
    if not events.record_received(db, received):
        return PipelineResult(Outcome.DUPLICATE, f"event {event.event_id} was already received")
    money = money_kind(event.event_type)
    if money is not None:
        result = apply_money_event(db, event, money, settings=settings, now=now)
    elif incoming is None or event_kind(event.event_type) is not EventKind.SUBSCRIPTION:
        result = PipelineResult(Outcome.IGNORED, why_not_applied(event.event_type))
    else:
        if event.event_type in NEW_TERM_EVENTS:
            subscriptions.release_hold(db, incoming.subscription.subscription_id)
        result = apply_snapshot(db, incoming, settings=settings, now=now)
    events.record_outcome(db, event.event_id, result.outcome.value, result.audit_reason)
    return result


def apply_money_event(
    db: Tx, event: WebhookEvent, kind: MoneyKind, *, settings: Settings, now: float
) -> PipelineResult:
    """Record a refund, chargeback, void or credit note; when the vendor's setting withholds
    access, the hold goes on the subscription and deciding again queues the Cancel."""
    record = record_money_event(db, event, kind, settings=settings, now=now)
    verdict = record.decision.verdict.value
    if not record.withholds or record.subscription_id is None:
        return PipelineResult(
            Outcome.IGNORED,
            f"{event.event_type}: {record.decision.reason}",
            record.subscription_id,
            money_kind=kind.value,
            money_verdict=verdict,
        )
    result = decide_again(
        db, record.subscription_id, settings=settings, now=now, cause=event.event_type
    )
    reason = f"{record.decision.reason}; {result.reason}" if result.reason else None
    return replace(
        result,
        reason=reason or record.decision.reason,
        money_kind=kind.value,
        money_verdict=verdict,
    )


def apply_snapshot(db: Tx, incoming: Snapshot, *, settings: Settings, now: float) -> PipelineResult:
    """Load, decide, write: keep the snapshot if it is not older than ours, then queue what it
    calls for."""
    subscription = incoming.subscription
    facts = load_facts(db, subscription.subscription_id, subscription)
    decision = decide(facts, incoming, settings=settings, now=now, cause=incoming.source)
    return write(db, decision, now=now)


def ingest_billing_read(
    db: Tx,
    document: Mapping[str, object],
    *,
    source: str,
    settings: Settings,
    now: float,
) -> PipelineResult:
    """A subscription read from the billing API (hosted-page result, page refresh): same path
    as a webhook, so the webhook that follows it changes nothing."""
    subscription = BillingSubscription.model_validate(document)
    incoming = Snapshot.of(subscription, observed_at=now, source=source)
    return apply_snapshot(db, incoming, settings=settings, now=now)


def decide_again(
    db: Tx,
    subscription_id: str,
    *,
    settings: Settings,
    now: float,
    cause: str,
) -> PipelineResult:
    """Load, decide, write for the stored snapshot, with no new one: who is who or what the
    vendor withholds changed (a landing visit, an operator's resolve, a money event, a restore),
    so queue a delivery when the platform state it now calls for differs from what was queued."""
    facts = load_facts(db, subscription_id)
    return write(db, decide(facts, None, settings=settings, now=now, cause=cause), now=now)
