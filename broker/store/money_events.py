"""The money_events table: every refund, chargeback, voided invoice and credit note billing
reported, what the vendor's settings made of it, and the hold it may put on access.

Called from ``pipeline.ingest_webhook`` inside the webhook's transaction, after the event's
audit row was inserted once (so a resend is a duplicate there and never reaches this module).
A hold is only written here; the Cancel it calls for is queued by the pipeline's own reconcile,
the same load, decide, write as any subscription event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from broker.config import Settings
from broker.core.billing_events import WebhookEvent
from broker.core.money_events import (
    MoneyDecision,
    MoneyEvent,
    MoneyKind,
    Verdict,
    decide_money,
    read_money_event,
)
from broker.store import subscriptions
from broker.store.engine.tx import Tx
from broker.store.ops_reads import OpsFilter, Page
from broker.store.sql import as_record, select_all, select_one

# Billing reports a new paid term: a hold from an earlier refund or chargeback no longer applies.
NEW_TERM_EVENTS = frozenset(
    {"subscription_renewed", "subscription_reactivated", "subscription_activation"}
)


@dataclass(frozen=True)
class MoneyRecord:
    event: MoneyEvent
    decision: MoneyDecision
    subscription_id: str | None  # the one it applies to, when exactly one is known

    @property
    def withholds(self) -> bool:
        return self.decision.verdict is Verdict.WITHHOLD and self.subscription_id is not None


@dataclass(frozen=True)
class MoneyRow:
    event_id: str
    event_type: str
    kind: str
    subscription_id: str | None
    customer_id: str | None
    amount: str | None
    of_total: str | None
    currency_code: str | None
    verdict: str
    reason: str
    received_at: float


def record_money_event(
    db: Tx, event: WebhookEvent, kind: MoneyKind, *, settings: Settings, now: float
) -> MoneyRecord:
    """Read, decide and store one money event; put the hold on its subscription if it withholds."""
    money = read_money_event(kind, event.data.model_extra or {})
    carried = event.data.subscription  # some money events carry the subscription as well
    if carried is not None and carried.subscription_id not in money.subscription_ids:
        money = replace(money, subscription_ids=(*money.subscription_ids, carried.subscription_id))
    decision = decide_money(money, settings.money_events)
    sid = _subscription_of(db, money)
    if decision.verdict is Verdict.WITHHOLD and sid is None:
        decision = MoneyDecision(
            Verdict.RECORD,
            f"{decision.reason}, but it names no single subscription the broker knows: "
            "access unchanged; check the customer in billing",
        )
    db.execute(
        "INSERT INTO money_events (event_id, event_type, kind, subscription_id, customer_id,"
        " amount, of_total, currency_code, verdict, reason, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event.event_id,
            event.event_type,
            kind.value,
            sid,
            money.customer_id,
            None if money.amount is None else str(money.amount),
            None if money.of_total is None else str(money.of_total),
            money.currency_code,
            decision.verdict.value,
            decision.reason,
            now,
        ],
    )
    record = MoneyRecord(money, decision, sid)
    if record.withholds and sid is not None:
        subscriptions.hold_access(db, sid, f"{event.event_type} {event.event_id}")
    return record


def money_events_page(db: Tx, where: OpsFilter) -> Page[MoneyRow]:
    """Money events, newest first, by the console's filters (state is the verdict, type the
    event type)."""
    clause, params = where.where("m", time_column="received_at", state_column="verdict")
    if where.event_type:
        clause = f"{clause} AND m.event_type = ?" if clause else "WHERE m.event_type = ?"
        params.append(where.event_type)
    rows = select_all(
        db,
        "SELECT m.event_id, m.event_type, m.kind, m.subscription_id, m.customer_id, m.amount,"  # noqa: S608 - our columns
        f" m.of_total, m.currency_code, m.verdict, m.reason, m.received_at FROM money_events m"
        f" {clause} ORDER BY m.received_at DESC, m.event_id DESC LIMIT ? OFFSET ?",
        [*params, *where.bounds()],
    )
    found = [as_record(MoneyRow, row) for row in rows]
    return Page(found[: where.page_size], len(found) > where.page_size)


def billed_since(db: Tx, subscription_id: str, kind: MoneyKind, since: float) -> MoneyRow | None:
    """The latest money event of ``kind`` for the subscription received from ``since`` on: what
    billing reported it actually credited or refunded after a change (its answer does not say)."""
    row = select_one(
        db,
        "SELECT event_id, event_type, kind, subscription_id, customer_id, amount, of_total,"
        " currency_code, verdict, reason, received_at FROM money_events"
        " WHERE subscription_id = ? AND kind = ? AND received_at >= ?"
        " ORDER BY received_at DESC, event_id DESC LIMIT 1",
        [subscription_id, kind.value, since],
    )
    return None if row is None else as_record(MoneyRow, row)


def _subscription_of(db: Tx, money: MoneyEvent) -> str | None:
    """The one known subscription the event is about: named in it, else the customer's only
    subscription that has not ended. None when none or several could be meant."""
    known = [
        sid
        for sid in money.subscription_ids
        if select_one(db, "SELECT 1 FROM subscriptions WHERE subscription_id = ?", [sid])
    ]
    if len(known) == 1:
        return known[0]
    if known or money.customer_id is None:
        return None
    running = select_all(
        db,
        "SELECT subscription_id FROM subscriptions WHERE customer_id = ?"
        " AND status NOT IN ('cancelled', 'cancelled_from_dunning', 'expired', 'trial_expired',"
        " 'deleted')",
        [money.customer_id],
    )
    return str(running[0]["subscription_id"]) if len(running) == 1 else None


def erase_money_events(db: Tx, customer_ids: Sequence[str], subscription_ids: Sequence[str]) -> int:
    """Erasure: the money events of these customers or subscriptions."""
    customers = ", ".join("?" * len(customer_ids)) or "NULL"
    subs = ", ".join("?" * len(subscription_ids)) or "NULL"
    return db.execute(
        f"DELETE FROM money_events WHERE customer_id IN ({customers})"  # noqa: S608
        f" OR subscription_id IN ({subs})",
        [*customer_ids, *subscription_ids],
    ).rowcount
