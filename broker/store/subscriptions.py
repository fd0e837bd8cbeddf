"""The subscriptions table's writes, and only those: the one module that changes its rows.

Billing's last snapshot, what the last decision made of it, who it belongs to, what was queued
for the platform and what the platform acknowledged, and a money event's hold on access. What to
write is decided elsewhere (``core.decide``, the outbox's outcomes); reads may come from anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.core.decide import Mark
from broker.core.identity import Claim
from broker.store.engine.tx import SqlValue, Tx
from broker.store.sql import upsert


@dataclass(frozen=True)
class KeptSnapshot:
    """A billing snapshot to keep, with the decision's mark and queued target when it has them
    (one statement: on PostgreSQL each is a round trip)."""

    subscription_id: str
    customer_id: str | None
    status: str
    plan_code: str | None
    billing_json: str
    billing_updated_at: float
    billing_source: str
    updated_at: float
    mark: Mark | None = None
    queued_json: str | None = None


def keep_snapshot(db: Tx, kept: KeptSnapshot) -> None:
    """Insert the row or update these columns; a mark or target left out stays as it was."""
    row: dict[str, SqlValue] = {
        "subscription_id": kept.subscription_id,
        "customer_id": kept.customer_id,
        "status": kept.status,
        "plan_code": kept.plan_code,
        "billing_json": kept.billing_json,
        "billing_updated_at": kept.billing_updated_at,
        "billing_source": kept.billing_source,
        "updated_at": kept.updated_at,
    }
    if kept.mark is not None:
        row |= {"state": kept.mark.state.value, "reason": kept.mark.reason}
    if kept.queued_json is not None:
        row["queued_json"] = kept.queued_json
    upsert(db, "subscriptions", row, key="subscription_id")


def mark(db: Tx, subscription_id: str, marked: Mark, *, now: float) -> None:
    """What the last decision made of a subscription whose snapshot did not change."""
    db.execute(
        "UPDATE subscriptions SET state = ?, reason = ?, updated_at = ? WHERE subscription_id = ?",
        [marked.state.value, marked.reason, now, subscription_id],
    )


def set_queued(db: Tx, subscription_id: str, target_json: str) -> None:
    """The platform state last queued for the subscription (canonical JSON)."""
    db.execute(
        "UPDATE subscriptions SET queued_json = ? WHERE subscription_id = ?",
        [target_json, subscription_id],
    )


def set_acknowledged(db: Tx, subscription_id: str, state_json: str, *, now: float) -> None:
    """What the platform now holds, as its answer (or a finished step) proved."""
    db.execute(
        "UPDATE subscriptions SET acked_json = ?, updated_at = ? WHERE subscription_id = ?",
        [state_json, now, subscription_id],
    )


def bind(db: Tx, claim: Claim) -> None:
    """The subscription now belongs to the claim's org (a believed landing claim)."""
    db.execute(
        "UPDATE subscriptions SET zgid = ?, zuid = ?, bound_email = ? WHERE subscription_id = ?",
        [claim.zgid, claim.zuid, claim.email, claim.subscription_id],
    )


def assign_org(db: Tx, subscription_id: str, *, zgid: str, zuid: str | None) -> None:
    """The org an operator chose for a parked subscription (a zuid left out stays)."""
    db.execute(
        "UPDATE subscriptions SET zgid = ?, zuid = COALESCE(?, zuid) WHERE subscription_id = ?",
        [zgid, zuid, subscription_id],
    )


def hold_access(db: Tx, subscription_id: str, hold: str) -> None:
    """A money event withholds access: ``hold`` names it (event type and id)."""
    db.execute(
        "UPDATE subscriptions SET access_hold = ? WHERE subscription_id = ?",
        [hold, subscription_id],
    )


def release_hold(db: Tx, subscription_id: str) -> None:
    """Billing reported a new paid term: access follows the subscription again."""
    db.execute(
        "UPDATE subscriptions SET access_hold = NULL"
        " WHERE subscription_id = ? AND access_hold IS NOT NULL",
        [subscription_id],
    )


def queue_back_to_acknowledged(db: Tx) -> int:
    """Forget what was queued and not acknowledged: each subscription's queued state becomes the
    state the platform last acknowledged, so the pipeline queues billing's state wherever it
    differs from that (after a restore, whose queued states may never have been sent)."""
    return db.execute(
        "UPDATE subscriptions SET queued_json = acked_json"
        " WHERE queued_json IS NOT NULL OR acked_json IS NOT NULL"
    ).rowcount


def subscription_ids(db: Tx) -> list[str]:
    """Every subscription the store holds, in id order."""
    rows = db.select_all("SELECT subscription_id FROM subscriptions ORDER BY subscription_id")
    return [str(row["subscription_id"]) for row in rows]


def erase_subscriptions(db: Tx, subscription_ids: Sequence[str]) -> int:
    """Erasure: these subscription rows (their deliveries must be gone first)."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    return db.execute(
        f"DELETE FROM subscriptions WHERE subscription_id IN ({marks})",  # noqa: S608
        list(subscription_ids),
    ).rowcount
