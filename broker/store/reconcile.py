"""Reconciliation's rows: the run lock (a lease), the event cursor, run and drift records, and
feeding what billing's reads say into the state pipeline (or, in a dry run, only deciding).

Every function here runs on the store's writer thread inside ``Store.write``, whose transaction
is ``BEGIN IMMEDIATE``: two processes taking the lock at once are serialised by SQLite, so the
second sees the first's row. A run's writes go through ``while_held``, which renews its lease in
the same transaction, so a run whose lease was taken by another process writes nothing more.
Nothing here calls billing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from broker.config import Settings
from broker.core.billing_events import BillingCustomer, BillingSubscription, WebhookEvent
from broker.core.decide import Decision, Outcome, Snapshot, decide, event_snapshot
from broker.core.reconcile import Drift, StoredView
from broker.core.subscription_state import SubscriptionState
from broker.store import events
from broker.store.engine.tx import Tx
from broker.store.pipeline import PipelineResult, ingest_webhook, load_facts, write
from broker.store.sql import as_int, number, number_or_none, text, text_or_none

LOCK_NAME = "run"
CURSOR = "events_cursor"
T = TypeVar("T")


class LockLost(Exception):
    """This run's lease ran out and another process took the lock: it must write nothing more."""


def take_lock(db: Tx, owner: str, *, now: float, lease: float) -> bool:
    """Take the run lock unless another owner holds an unexpired lease."""
    held = db.select_one("SELECT owner, expires_at FROM reconcile_lock WHERE name = ?", [LOCK_NAME])
    if held is not None and held["owner"] != owner and number(held, "expires_at") > now:
        return False
    db.execute(
        "INSERT INTO reconcile_lock (name, owner, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE"
        " SET owner = excluded.owner, expires_at = excluded.expires_at",
        [LOCK_NAME, owner, now + lease],
    )
    return True


def renew_lock(db: Tx, owner: str, *, now: float, lease: float) -> bool:
    """Extend ``owner``'s lease; False if ``owner`` no longer holds the lock (it was taken)."""
    renewed = db.execute(
        "UPDATE reconcile_lock SET expires_at = ? WHERE name = ? AND owner = ?",
        [now + lease, LOCK_NAME, owner],
    )
    return renewed.rowcount == 1


def while_held(
    db: Tx,
    work: Callable[[Tx], T],
    *,
    owner: str,
    now: float,
    lease: float,
) -> T:
    """``work``, in the transaction that renews ``owner``'s lease, only if it still holds it."""
    if not renew_lock(db, owner, now=now, lease=lease):
        raise LockLost(owner)
    return work(db)


def release_lock(db: Tx, owner: str) -> None:
    db.execute("DELETE FROM reconcile_lock WHERE name = ? AND owner = ?", [LOCK_NAME, owner])


def cursor(db: Tx) -> str | None:
    row = db.execute("SELECT value FROM reconcile_state WHERE name = ?", [CURSOR]).fetchone()
    return str(row[0]) if row else None


def save_cursor(db: Tx, day: str) -> None:
    db.execute(
        "INSERT INTO reconcile_state (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [CURSOR, day],
    )


@dataclass(frozen=True)
class RunCounts:
    events_read: int = 0
    events_fed: int = 0
    subscriptions_read: int = 0
    full_reads: int = 0
    customers_read: int = 0
    missing_in_billing: int = 0  # held as billing, answered 404 by billing


def start_run(db: Tx, *, trigger: str, dry_run: bool, since: str | None, now: float) -> int:
    inserted = db.select_one(
        "INSERT INTO reconcile_runs (started_at, trigger, dry_run, since, outcome)"
        " VALUES (?, ?, ?, ?, 'running') RETURNING id",
        [now, trigger, int(dry_run), since],
    )
    assert inserted is not None, "an INSERT … RETURNING answers its row"
    return as_int(inserted, "id")


def finish_run(
    db: Tx,
    run_id: int,
    *,
    outcome: str,
    counts: RunCounts,
    drift: list[Drift],
    error: str | None,
    now: float,
) -> None:
    """Record how the run ended, with each drift it found and what it queued."""
    queued = sum(1 for d in drift if d.delivery_id is not None)
    db.execute(
        "UPDATE reconcile_runs SET finished_at = ?, outcome = ?, events_read = ?, events_fed = ?,"
        " subscriptions_read = ?, full_reads = ?, customers_read = ?, missing_in_billing = ?,"
        " drift = ?, queued = ?, error = ? WHERE id = ?",
        [
            now,
            outcome,
            counts.events_read,
            counts.events_fed,
            counts.subscriptions_read,
            counts.full_reads,
            counts.customers_read,
            counts.missing_in_billing,
            len(drift),
            queued,
            error,
            run_id,
        ],
    )
    for d in drift:
        db.execute(
            "INSERT INTO reconcile_drift (run_id, subscription_id, kind, billing, broker,"
            " action, delivery_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [run_id, d.subscription_id, d.kind.value, d.billing, d.broker, d.action, d.delivery_id],
        )


def known_events(db: Tx, event_ids: list[str]) -> set[str]:
    """Which of these events the broker already received (by webhook or an earlier run)."""
    known: set[str] = set()
    for event_id in event_ids:
        row = db.execute("SELECT 1 FROM webhook_events WHERE event_id = ?", [event_id])
        if row.fetchone() is not None:
            known.add(event_id)
    return known


def stored_views(db: Tx) -> dict[str, StoredView]:
    """Every stored subscription as the sweep compares it."""
    updated_time = db.json_text("billing_json", "updated_time")
    rows = db.select_all(
        f"SELECT subscription_id, status, plan_code, {updated_time} AS updated_time,"  # noqa: S608 - ours
        " billing_updated_at FROM subscriptions"
    )
    return {
        text(row, "subscription_id"): StoredView(
            text(row, "subscription_id"),
            text_or_none(row, "status"),
            text_or_none(row, "plan_code"),
            _when(row["updated_time"]),
            number_or_none(row, "billing_updated_at"),
        )
        for row in rows
    }


def parked(db: Tx) -> list[tuple[str, str | None, str | None]]:
    """Parked subscriptions: (id, billing customer id, the stored snapshot's JSON)."""
    rows = db.select_all(
        "SELECT subscription_id, customer_id, billing_json FROM subscriptions"
        " WHERE state = ? ORDER BY subscription_id",
        [SubscriptionState.PARKED.value],
    )
    return [
        (
            text(row, "subscription_id"),
            text_or_none(row, "customer_id"),
            text_or_none(row, "billing_json"),
        )
        for row in rows
    ]


def feed_event(
    db: Tx,
    event: WebhookEvent,
    raw_body: bytes,
    *,
    run_id: int,
    settings: Settings,
    now: float,
    dry_run: bool,
) -> PipelineResult:
    """An event the broker never received, through the webhook's own path (deduplicated on
    ``event_id``) and marked as found by reconciliation; a dry run only decides."""
    if dry_run:
        snapshot = event_snapshot(event, now=now)
        if snapshot is None:
            return PipelineResult(_preview(None).outcome)
        return _decided(db, snapshot, settings=settings, now=now, dry_run=True)
    result = ingest_webhook(
        db,
        event,
        raw_body=raw_body,
        content_type="application/json",
        request_id=f"reconcile:{run_id}",
        settings=settings,
        now=now,
    )
    events.mark_found_by_reconcile(db, event.event_id, f"reconcile:{run_id}")
    return result


def feed_read(
    db: Tx,
    document: BillingSubscription | Mapping[str, object],
    *,
    floor: float | None,
    settings: Settings,
    now: float,
    dry_run: bool,
    source: str = "reconcile",
) -> PipelineResult:
    """A full read of one subscription, billing's state now. A backdated change carries an
    ``updated_time`` older than what is stored, yet it is the newer truth: it is ordered no
    earlier than ``floor``, what was stored *before* the read (so a webhook that arrived
    meanwhile with a later time still wins)."""
    subscription = (
        document
        if isinstance(document, BillingSubscription)
        else BillingSubscription.model_validate(document)
    )
    snapshot = Snapshot.of(subscription, observed_at=now, source=source)
    if floor is not None and snapshot.updated_at < floor:
        snapshot = Snapshot(subscription, floor, source)
    return _decided(db, snapshot, settings=settings, now=now, dry_run=dry_run)


def _decided(
    db: Tx,
    snapshot: Snapshot,
    *,
    settings: Settings,
    now: float,
    dry_run: bool,
) -> PipelineResult:
    facts = load_facts(db, snapshot.subscription.subscription_id, snapshot.subscription)
    decision = decide(facts, snapshot, settings=settings, now=now, cause="reconcile")
    return _preview(decision) if dry_run else write(db, decision, now=now)


def _preview(decision: Decision | None) -> PipelineResult:
    """What ``write`` would answer, without writing (a queued delivery has no id yet)."""
    if decision is None:
        return PipelineResult(Outcome.IGNORED, "not a subscription event")
    return PipelineResult(decision.outcome, decision.reason, decision.subscription_id)


def _when(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def snapshot_with_customer(billing_json: str, customer: BillingCustomer) -> BillingSubscription:
    """The stored snapshot with billing's fresh customer in it (a parked one's re-read)."""
    stored = BillingSubscription.model_validate_json(billing_json)
    return stored.model_copy(update={"customer": customer})


def erase_drift(db: Tx, subscription_ids: Sequence[str]) -> int:
    """Erasure: the drift runs recorded for these subscriptions (the run totals stay)."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    return db.execute(
        f"DELETE FROM reconcile_drift WHERE subscription_id IN ({marks})",  # noqa: S608
        list(subscription_ids),
    ).rowcount
