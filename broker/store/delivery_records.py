"""What the operator and monitoring read of the outbox: one delivery, a bounded list, its
attempts, and counts by state. Read models are frozen dataclasses; every query is bounded in SQL.

Reads only: claiming, recording and retrying deliveries belong to ``outbox``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from broker.store.engine.tx import SqlValue, Tx
from broker.store.outbox import DeliveryState, RecordedAction, recorded_action
from broker.store.sql import (
    as_int,
    number,
    number_or_none,
    select_all,
    select_one,
    text,
    text_or_none,
    whole,
    whole_or_none,
)

_DELIVERY_COLUMNS = (
    "id, subscription_id, state, action, attempts, uncertain, cause, created_at,"
    " next_attempt_at, finished_at, last_status, last_error"
)
_ATTEMPT_COLUMNS = (
    "id, delivery_id, started_at, latency_ms, method, url, request_body, status, outcome,"
    " error, response_excerpt"
)


@dataclass(frozen=True)
class DeliveryRecord:
    """One row of the deliveries table, as the operator sees it."""

    id: int
    subscription_id: str
    state: DeliveryState
    action: RecordedAction | None
    attempts: int
    uncertain: bool  # an earlier attempt may have reached the platform before a crash
    cause: str
    created_at: float
    next_attempt_at: float | None
    finished_at: float | None
    last_status: int | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, SqlValue]) -> DeliveryRecord:
        return cls(
            id=whole(row, "id"),
            subscription_id=text(row, "subscription_id"),
            state=DeliveryState(text(row, "state")),
            action=recorded_action(text_or_none(row, "action")),
            attempts=whole(row, "attempts"),
            uncertain=bool(row["uncertain"]),
            cause=text(row, "cause"),
            created_at=number(row, "created_at"),
            next_attempt_at=number_or_none(row, "next_attempt_at"),
            finished_at=number_or_none(row, "finished_at"),
            last_status=whole_or_none(row, "last_status"),
            last_error=text_or_none(row, "last_error"),
        )

    def as_dict(self) -> dict[str, object]:
        """The columns as stored (``uncertain`` 0 or 1), for ``--json`` and ``show``."""
        return asdict(self) | {
            "state": str(self.state),
            "action": str(self.action) if self.action is not None else None,
            "uncertain": int(self.uncertain),
        }


@dataclass(frozen=True)
class AttemptRecord:
    """One call made for a delivery: what was sent, what came back."""

    id: int
    delivery_id: int
    started_at: float
    latency_ms: float
    method: str
    url: str
    request_body: str
    status: int | None
    outcome: str
    error: str | None
    response_excerpt: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, SqlValue]) -> AttemptRecord:
        return cls(
            id=whole(row, "id"),
            delivery_id=whole(row, "delivery_id"),
            started_at=number(row, "started_at"),
            latency_ms=number(row, "latency_ms"),
            method=text(row, "method"),
            url=text(row, "url"),
            request_body=text(row, "request_body"),
            status=whole_or_none(row, "status"),
            outcome=text(row, "outcome"),
            error=text_or_none(row, "error"),
            response_excerpt=text_or_none(row, "response_excerpt"),
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class OutboxSummary:
    """Counts by state and the age of the oldest unfinished delivery, for monitoring."""

    counts: dict[DeliveryState, int]
    oldest_pending_seconds: float


def get_delivery(db: Tx, delivery_id: int) -> DeliveryRecord | None:
    row = select_one(
        db,
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608 - our columns
        [delivery_id],
    )
    return DeliveryRecord.from_row(row) if row else None


def list_deliveries(
    db: Tx, *, state: DeliveryState | None = None, limit: int = 100
) -> list[DeliveryRecord]:
    """Newest first, at most ``limit``."""
    params: list[SqlValue] = [str(state), limit] if state else [limit]
    where = "WHERE state = ?" if state else ""
    sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
    return [DeliveryRecord.from_row(row) for row in select_all(db, sql, params)]


def delivery_attempts(db: Tx, delivery_id: int) -> list[AttemptRecord]:
    rows = select_all(
        db,
        f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ? ORDER BY id",  # noqa: S608
        [delivery_id],
    )
    return [AttemptRecord.from_row(row) for row in rows]


def outbox_summary(db: Tx, *, now: float) -> OutboxSummary:
    counts = dict.fromkeys(DeliveryState, 0)
    for entry in select_all(db, "SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state"):
        counts[DeliveryState(text(entry, "state"))] = as_int(entry, "n")
    oldest = number_or_none(
        select_all(
            db,
            "SELECT MIN(created_at) AS t FROM deliveries WHERE state IN ('pending', 'in_flight')",
        )[0],
        "t",
    )
    return OutboxSummary(counts, max(0.0, now - oldest) if oldest else 0.0)
