"""The operator console's picture of one org as the broker holds it: its subscriptions with their
state and reason and the platform's last state, its billing customers, its latest deliveries and
audit rows; and the orgs that have a conflict, for the console's lists. Reads only."""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.mapping import PlatformState
from broker.core.subscription_state import SubscriptionState
from broker.store.engine.tx import Tx
from broker.store.outbox import DeliveryState, RecordedAction, recorded_action
from broker.store.sql import as_float, as_int, select_all, text, text_or_none

RECENT = 20  # deliveries and audit rows shown per org


@dataclass(frozen=True)
class HeldSubscription:
    subscription_id: str
    customer_id: str | None
    status: str | None
    plan_code: str | None
    state: SubscriptionState | None
    reason: str | None  # why it is in that state, for people
    platform_active: bool  # the platform acknowledged an active state for it
    queued_active: bool  # the last state queued for it is active
    updated_at: float
    # What became of it after billing answered 404 for it (``billing_missing.state``), if it did.
    missing_in_billing: str | None = None

    @property
    def conflict(self) -> bool:
        return self.state is SubscriptionState.CONFLICT


@dataclass(frozen=True)
class OrgDelivery:
    delivery_id: int
    subscription_id: str
    state: DeliveryState
    action: RecordedAction | None
    attempts: int
    created_at: float


@dataclass(frozen=True)
class OrgAudit:
    at: float
    zuid: str
    action: str
    subscription_id: str | None
    result: str


@dataclass(frozen=True)
class OrgHeld:
    zgid: str
    subscriptions: tuple[HeldSubscription, ...]
    customer_ids: tuple[str, ...]
    deliveries: tuple[OrgDelivery, ...]
    audit: tuple[OrgAudit, ...]


@dataclass(frozen=True)
class ConflictRow:
    zgid: str
    subscription_id: str
    reason: str


def _active(text: str | None) -> bool:
    state = PlatformState.from_json(text)
    return state is not None and state.active


def org_held(db: Tx, zgid: str) -> OrgHeld:
    """What the broker holds for org ``zgid`` (its own zgid, or its customer's ``cf_zgid``)."""
    rows = select_all(
        db,
        "SELECT s.subscription_id, s.customer_id, s.status, s.plan_code, s.state, s.reason,"
        " s.queued_json, s.acked_json, s.updated_at, m.state AS missing"
        " FROM subscriptions s LEFT JOIN customers c ON c.customer_id = s.customer_id"
        " LEFT JOIN billing_missing m ON m.subscription_id = s.subscription_id"
        " WHERE s.zgid = ? OR c.zgid = ? ORDER BY s.subscription_id",
        [zgid, zgid],
    )
    subscriptions = tuple(
        HeldSubscription(
            str(r["subscription_id"]),
            text_or_none(r, "customer_id"),
            text_or_none(r, "status"),
            text_or_none(r, "plan_code"),
            SubscriptionState(text(r, "state")) if r["state"] else None,
            text_or_none(r, "reason"),
            platform_active=_active(text_or_none(r, "acked_json")),
            queued_active=_active(text_or_none(r, "queued_json")),
            updated_at=as_float(r, "updated_at"),
            missing_in_billing=text_or_none(r, "missing"),
        )
        for r in rows
    )
    customers = select_all(
        db,
        "SELECT customer_id FROM customers WHERE zgid = ?"
        " UNION SELECT customer_id FROM subscriptions WHERE zgid = ? AND customer_id IS NOT NULL"
        " ORDER BY customer_id",
        [zgid, zgid],
    )
    deliveries = [
        OrgDelivery(
            as_int(r, "id"),
            str(r["subscription_id"]),
            DeliveryState(text(r, "state")),
            recorded_action(text_or_none(r, "action")),
            as_int(r, "attempts"),
            as_float(r, "created_at"),
        )
        for r in select_all(
            db,
            "SELECT d.id, d.subscription_id, d.state, d.action, d.attempts, d.created_at"
            " FROM deliveries d JOIN subscriptions s ON s.subscription_id = d.subscription_id"
            " LEFT JOIN customers c ON c.customer_id = s.customer_id"
            " WHERE s.zgid = ? OR c.zgid = ? ORDER BY d.id DESC LIMIT ?",
            [zgid, zgid, RECENT],
        )
    ]
    audit = [
        OrgAudit(
            as_float(r, "at"),
            str(r["zuid"]),
            str(r["action"]),
            text_or_none(r, "subscription_id"),
            text(r, "result"),
        )
        for r in select_all(
            db,
            "SELECT at, zuid, action, subscription_id, result FROM audit_log WHERE zgid = ?"
            " ORDER BY id DESC LIMIT ?",
            [zgid, RECENT],
        )
    ]
    return OrgHeld(
        zgid,
        subscriptions,
        tuple(str(r["customer_id"]) for r in customers),
        tuple(deliveries),
        tuple(audit),
    )


def conflicts(db: Tx) -> list[ConflictRow]:
    """Every subscription held back as a duplicate, with its org (for the console's lists)."""
    rows = select_all(
        db,
        "SELECT s.subscription_id, COALESCE(s.zgid, c.zgid) AS zgid, s.reason"
        " FROM subscriptions s LEFT JOIN customers c ON c.customer_id = s.customer_id"
        " WHERE s.state = ? ORDER BY s.subscription_id",
        [SubscriptionState.CONFLICT.value],
    )
    return [
        ConflictRow(str(r["zgid"] or ""), str(r["subscription_id"]), str(r["reason"] or ""))
        for r in rows
    ]
