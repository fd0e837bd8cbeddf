"""What the operator console and the operator commands read: webhook events, deliveries, parked
subscriptions, the audit log, each filtered and paged in SQL, as frozen rows. Reads only.

A filter names the subscription, the org (resolved as the pipeline does: billing's, a claim's,
a verified sign-in's zgid), a state (an event's outcome, a delivery's state), an event type and
a time range; each list asks for one row more than a page, to know whether another page follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from broker.core.mapping import parked_for_quantity
from broker.core.subscription_state import SubscriptionState
from broker.store.delivery_records import DeliveryRecord
from broker.store.engine.tx import SqlValue, Tx
from broker.store.sql import as_record, select_all, whole

_DELIVERY_COLUMNS = (
    "d.id, d.subscription_id, d.state, d.action, d.attempts, d.uncertain, d.cause, d.created_at,"
    " d.next_attempt_at, d.finished_at, d.last_status, d.last_error"
)
# The org of a subscription, in core.identity.resolve_identity's order: its billing customer's
# (billing's custom fields, as kept), then its own believed claim, then for a zuid without a zgid
# that user's verified binding.
_ORG = (
    "(SELECT COALESCE(c.zgid, s.zgid, (SELECT u.zgid FROM users u"
    " WHERE u.zuid = COALESCE(c.zuid, s.zuid) AND u.verified_by IN ('signed', 'zoho')))"
    " FROM subscriptions s LEFT JOIN customers c ON c.customer_id = s.customer_id"
    " WHERE s.subscription_id = {table}.subscription_id)"
)


@dataclass(frozen=True)
class OpsFilter:
    """The console's filters; None means "any"."""

    state: str | None = None
    subscription_id: str | None = None
    zgid: str | None = None
    event_type: str | None = None
    delivery_id: int | None = None  # deliveries only
    since: float | None = None  # inclusive, epoch seconds
    until: float | None = None  # exclusive
    page: int = 1
    page_size: int = 50

    def where(
        self, table: str, *, time_column: str, state_column: str | None
    ) -> tuple[str, list[SqlValue]]:
        clauses: list[str] = []
        params: list[SqlValue] = []
        if self.state and state_column:
            clauses.append(f"{table}.{state_column} = ?")
            params.append(self.state)
        if self.subscription_id:
            clauses.append(f"{table}.subscription_id = ?")
            params.append(self.subscription_id)
        if self.zgid:
            clauses.append(_ORG.format(table=table) + " = ?")
            params.append(self.zgid)
        if self.delivery_id is not None and table == "d":
            clauses.append("d.id = ?")
            params.append(self.delivery_id)
        if self.event_type and table == "e":
            clauses.append("e.event_type = ?")
            params.append(self.event_type)
        if self.since is not None:
            clauses.append(f"{table}.{time_column} >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append(f"{table}.{time_column} < ?")
            params.append(self.until)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def bounds(self) -> list[int]:
        """LIMIT and OFFSET: one row more than a page, to tell whether a next page exists."""
        return [self.page_size + 1, (max(self.page, 1) - 1) * self.page_size]


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    has_next: bool


@dataclass(frozen=True)
class WebhookEventRow:
    event_id: str
    event_type: str
    subscription_id: str | None
    received_at: float
    outcome: str
    reason: str | None
    content_type: str | None
    request_id: str | None
    raw_body: str  # as received; redact before showing
    body_pruned_at: float | None = None  # retention emptied the body then (the row stays)


@dataclass(frozen=True)
class ParkedRow:
    subscription_id: str
    customer_id: str | None
    status: str | None
    zuid: str | None
    zgid: str | None
    reason: str  # why it is parked
    updated_at: float

    @property
    def waits_for_org(self) -> bool:
        """Whether choosing an org can release it (a quantity park waits for billing instead)."""
        return not parked_for_quantity(self.reason)


@dataclass(frozen=True)
class UnmappedRow:
    """A subscription of the app's product whose plan code maps to no Developer Console plan."""

    subscription_id: str
    customer_id: str | None
    status: str | None
    plan_code: str | None
    updated_at: float


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: float
    zuid: str
    zgid: str
    action: str
    subscription_id: str | None
    detail: str | None
    result: str
    request_id: str | None


def _page(rows: list[T], size: int) -> Page[T]:
    return Page(rows[:size], len(rows) > size)


def webhook_events(db: Tx, where: OpsFilter) -> Page[WebhookEventRow]:
    clause, params = where.where("e", time_column="received_at", state_column="outcome")
    rows = select_all(
        db,
        "SELECT e.event_id, e.event_type, e.subscription_id, e.received_at, e.outcome, e.reason,"  # noqa: S608 - our columns
        " e.content_type, e.request_id, e.raw_body, e.body_pruned_at"
        f" FROM webhook_events e {clause}"
        " ORDER BY e.received_at DESC, e.event_id LIMIT ? OFFSET ?",
        [*params, *where.bounds()],
    )
    return _page([_event(row) for row in rows], where.page_size)


def webhook_event(db: Tx, event_id: str) -> WebhookEventRow | None:
    rows = select_all(
        db,
        "SELECT event_id, event_type, subscription_id, received_at, outcome, reason,"
        " content_type, request_id, raw_body, body_pruned_at FROM webhook_events"
        " WHERE event_id = ?",
        [event_id],
    )
    return _event(rows[0]) if rows else None


def _event(row: dict[str, SqlValue]) -> WebhookEventRow:
    raw = row["raw_body"]
    body = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return as_record(WebhookEventRow, row | {"raw_body": body})


def deliveries(db: Tx, where: OpsFilter) -> Page[DeliveryRecord]:
    clause, params = where.where("d", time_column="created_at", state_column="state")
    rows = select_all(
        db,
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d {clause}"  # noqa: S608 - our columns
        " ORDER BY d.id DESC LIMIT ? OFFSET ?",
        [*params, *where.bounds()],
    )
    return _page([DeliveryRecord.from_row(row) for row in rows], where.page_size)


def delivery_ids(db: Tx, where: OpsFilter) -> list[int]:
    """Every delivery the filter matches, unpaged, for "retry all matching"."""
    clause, params = where.where("d", time_column="created_at", state_column="state")
    rows = select_all(db, f"SELECT d.id FROM deliveries d {clause} ORDER BY d.id", params)  # noqa: S608
    return [whole(row, "id") for row in rows]


def parked(db: Tx, where: OpsFilter) -> Page[ParkedRow]:
    clause, params = where.where("s", time_column="updated_at", state_column="status")
    clause = f"{clause} AND" if clause else "WHERE"
    rows = select_all(
        db,
        "SELECT s.subscription_id, s.customer_id, s.status, s.zuid, s.zgid,"  # noqa: S608
        " COALESCE(s.reason, '') AS reason,"
        f" s.updated_at FROM subscriptions s {clause} s.state = ?"
        " ORDER BY s.updated_at DESC LIMIT ? OFFSET ?",
        [*params, SubscriptionState.PARKED.value, *where.bounds()],
    )
    return _page([as_record(ParkedRow, row) for row in rows], where.page_size)


def unmapped(db: Tx, where: OpsFilter) -> Page[UnmappedRow]:
    """Subscriptions in state ``unmapped_plan``: paying customers nothing was sent for."""
    clause, params = where.where("s", time_column="updated_at", state_column="status")
    clause = f"{clause} AND" if clause else "WHERE"
    rows = select_all(
        db,
        "SELECT s.subscription_id, s.customer_id, s.status, s.plan_code, s.updated_at"  # noqa: S608
        f" FROM subscriptions s {clause} s.state = ?"
        " ORDER BY s.updated_at DESC LIMIT ? OFFSET ?",
        [*params, SubscriptionState.UNMAPPED_PLAN.value, *where.bounds()],
    )
    return _page([as_record(UnmappedRow, row) for row in rows], where.page_size)


def audit_log(db: Tx, where: OpsFilter) -> Page[AuditRow]:
    clause, params = where.where("a", time_column="at", state_column="result")
    if where.zgid:  # the audit row names its org itself
        clause = clause.replace(_ORG.format(table="a") + " = ?", "a.zgid = ?")
    if where.event_type:  # for the audit log, "type" is the action
        clause = f"{clause} AND a.action = ?" if clause else "WHERE a.action = ?"
        params.append(where.event_type)
    rows = select_all(
        db,
        "SELECT a.id, a.at, a.zuid, a.zgid, a.action, a.subscription_id, a.detail, a.result,"  # noqa: S608
        f" a.request_id FROM audit_log a {clause} ORDER BY a.id DESC LIMIT ? OFFSET ?",
        [*params, *where.bounds()],
    )
    return _page([as_record(AuditRow, row) for row in rows], where.page_size)
