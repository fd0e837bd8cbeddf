"""Subscriptions billing answers 404 for (``billing_missing``): the broker held them as billing,
billing's full list lacks them and a read of each says it does not exist. This module owns the
table: what was found, what became of it (``MissingState``), and the Cancel sent for it.

Sending the Cancel marks the stored snapshot as gone (status ``deleted``) through the state
pipeline, exactly as a ``subscription_deleted`` webhook would, so the platform gets one Cancel
and a later run no longer holds the subscription as billing: never a second Cancel. Functions
run inside store transactions; nothing here calls billing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.config import Settings
from broker.core.org_billing import bills
from broker.core.reconcile import MissingState, gone_document
from broker.core.subscription_state import MISSING_IN_BILLING_SOURCE
from broker.store.engine.tx import SqlValue, Tx
from broker.store.ops_actions import Operator, audit
from broker.store.pipeline import PipelineResult
from broker.store.reconcile import feed_read
from broker.store.sql import (
    number,
    number_or_none,
    select_all,
    select_one,
    text,
    text_or_none,
    whole_or_none,
)


class MissingRefused(Exception):
    """The Cancel cannot be sent: the subscription is not waiting, or was cancelled already."""


@dataclass(frozen=True)
class MissingRow:
    subscription_id: str
    found_at: float
    last_seen_at: float
    run_id: int | None
    broker: str  # what the broker held when billing answered 404: "live testapp_1001"
    state: MissingState
    delivery_id: int | None
    handled_at: float | None
    handled_by: str | None


_COLUMNS = (
    "subscription_id, found_at, last_seen_at, run_id, broker, state, delivery_id, handled_at,"
    " handled_by"
)


def record(
    db: Tx, subscription_id: str, *, broker: str, state: MissingState, run_id: int, now: float
) -> MissingRow:
    """Record one 404 (first found, or seen again); an existing row keeps when it was found
    and what became of it."""
    db.execute(
        "INSERT INTO billing_missing (subscription_id, found_at, last_seen_at, run_id, broker,"
        " state) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subscription_id) DO UPDATE"
        " SET last_seen_at = excluded.last_seen_at, run_id = excluded.run_id",
        [subscription_id, now, now, run_id, broker, state.value],
    )
    found = row(db, subscription_id)
    assert found is not None  # just written, in this transaction
    return found


def row(db: Tx, subscription_id: str) -> MissingRow | None:
    found = select_one(
        db,
        f"SELECT {_COLUMNS} FROM billing_missing WHERE subscription_id = ?",  # noqa: S608 - ours
        [subscription_id],
    )
    return _row(found) if found else None


def waiting(db: Tx) -> list[MissingRow]:
    """Every recorded 404, those waiting for an operator first, then newest first."""
    found = select_all(
        db,
        f"SELECT {_COLUMNS} FROM billing_missing"  # noqa: S608 - ours
        " ORDER BY CASE state WHEN ? THEN 0 ELSE 1 END, found_at DESC, subscription_id",
        [MissingState.ASKED.value],
    )
    return [_row(r) for r in found]


def found_again(db: Tx, listed: frozenset[str]) -> list[str]:
    """Forget the 404s of subscriptions billing lists again; the ids forgotten."""
    recorded = [
        r["subscription_id"] for r in select_all(db, "SELECT subscription_id FROM billing_missing")
    ]
    back = sorted(sid for sid in recorded if sid in listed)
    for sid in back:
        db.execute("DELETE FROM billing_missing WHERE subscription_id = ?", [sid])
    return back


def forget(db: Tx, subscription_id: str) -> None:
    """Billing answered for it after all (a full read succeeded)."""
    db.execute("DELETE FROM billing_missing WHERE subscription_id = ?", [subscription_id])


def send_cancel(
    db: Tx, subscription_id: str, *, settings: Settings, now: float, by: str
) -> PipelineResult:
    """Mark the stored snapshot as gone and let the pipeline queue the platform's Cancel; only
    for a recorded 404 not cancelled yet, whose snapshot still bills (else ``MissingRefused``)."""
    found = row(db, subscription_id)
    if found is None:
        raise MissingRefused(f"billing has not answered 404 for subscription {subscription_id}")
    if found.state is MissingState.CANCELLED:
        raise MissingRefused(f"subscription {subscription_id} was cancelled already")
    stored = select_one(
        db,
        "SELECT status, billing_json, billing_updated_at FROM subscriptions"
        " WHERE subscription_id = ?",
        [subscription_id],
    )
    if stored is None or not bills(text_or_none(stored, "status")):
        raise MissingRefused(
            f"the broker no longer holds subscription {subscription_id} as billing"
        )
    result = feed_read(
        db,
        gone_document(text_or_none(stored, "billing_json"), subscription_id),
        floor=number_or_none(stored, "billing_updated_at"),
        settings=settings,
        now=now,
        dry_run=False,
        source=MISSING_IN_BILLING_SOURCE,
    )
    db.execute(
        "UPDATE billing_missing SET state = ?, delivery_id = ?, handled_at = ?, handled_by = ?"
        " WHERE subscription_id = ?",
        [MissingState.CANCELLED.value, result.delivery_id, now, by, subscription_id],
    )
    return result


def operator_cancel(
    db: Tx, who: Operator, subscription_id: str, *, settings: Settings, now: float
) -> PipelineResult:
    """An operator's Cancel of one asked 404, audited in the same transaction."""
    result = send_cancel(db, subscription_id, settings=settings, now=now, by=f"ops:{who.name}")
    audit(
        db,
        who,
        "ops.cancel_missing_in_billing",
        str(result.outcome),
        now=now,
        subscription_id=subscription_id,
        detail={"delivery_id": result.delivery_id, "reason": result.reason},
    )
    return result


def _row(found: dict[str, SqlValue]) -> MissingRow:
    return MissingRow(
        subscription_id=text(found, "subscription_id"),
        found_at=number(found, "found_at"),
        last_seen_at=number(found, "last_seen_at"),
        run_id=whole_or_none(found, "run_id"),
        broker=text(found, "broker"),
        state=MissingState(text(found, "state")),
        delivery_id=whole_or_none(found, "delivery_id"),
        handled_at=number_or_none(found, "handled_at"),
        handled_by=text_or_none(found, "handled_by"),
    )


def erase_missing(db: Tx, subscription_ids: Sequence[str]) -> int:
    """Erasure: what reconciliation noted of these subscriptions missing in billing."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    return db.execute(
        f"DELETE FROM billing_missing WHERE subscription_id IN ({marks})",  # noqa: S608
        list(subscription_ids),
    ).rowcount
