"""The deliveries table as a durable outbox: claim due work under a lease, record every outcome.

Each function runs inside a store transaction (``store.write(partial(fn, ...))``). Claims are
serialised per subscription: a subscription never has two calls on the wire at once, so the
platform sees its changes in the order billing made them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from broker.core.mapping import ACTION_METHODS, PlatformAction, PlatformState
from broker.core.platform_answers import CallResult
from broker.store import subscriptions
from broker.store.engine.tx import Tx
from broker.store.sql import as_int, number_or_none, select_all, text, text_or_none, whole


class DeliveryState(StrEnum):
    """Where a delivery stands; the deliveries table's CHECK constraint lists the same values."""

    PENDING = "pending"  # waiting for its next_attempt_at
    IN_FLIGHT = "in_flight"  # claimed under a lease; a call may be on the wire
    DONE = "done"  # the platform holds the target
    DEAD = "dead"  # refused, or retried past the horizon: the operator's to look at
    SUPERSEDED = "superseded"  # a newer delivery of the subscription took its place


# The PostgreSQL channel a commit that queues a delivery notifies, so every replica's worker
# wakes at once instead of at its next poll.
DELIVERIES_CHANNEL = "broker_deliveries"

FINISHED = frozenset({DeliveryState.DONE, DeliveryState.DEAD, DeliveryState.SUPERSEDED})


class NoCall(StrEnum):
    """The action a delivery records when the platform already held its target: no call made."""

    NONE = "none"


# What the deliveries table's ``action`` column holds once a delivery was attempted.
RecordedAction = PlatformAction | NoCall


def recorded_action(text: str | None) -> RecordedAction | None:
    """The ``action`` column read back (None: the delivery was never attempted)."""
    if text is None:
        return None
    return NoCall(text) if text == NoCall.NONE else PlatformAction(text)


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    subscription_id: str
    target: PlatformState
    acknowledged: PlatformState | None
    attempt: int  # this attempt's number, 1-based
    first_attempt_at: float
    uncertain: bool  # an earlier attempt may have reached the platform before a crash
    cause: str


# The oldest pending delivery of each subscription with none in flight, due now.
_DUE = """
            SELECT d.*, s.acked_json FROM deliveries d
            JOIN subscriptions s ON s.subscription_id = d.subscription_id
            WHERE d.state = 'pending' AND d.next_attempt_at <= :now
              AND d.id = (SELECT MIN(p.id) FROM deliveries p
                          WHERE p.subscription_id = d.subscription_id AND p.state = 'pending')
              AND NOT EXISTS (SELECT 1 FROM deliveries f
                              WHERE f.subscription_id = d.subscription_id
                                AND f.state = 'in_flight')
            ORDER BY d.next_attempt_at, d.id
            LIMIT :limit
            """


def claim_due(
    db: Tx,
    *,
    owner: str,
    now: float,
    lease_seconds: float,
    limit: int,
    held: Collection[int] = (),
    take_back: bool = True,
) -> tuple[list[ClaimedDelivery], float | None]:
    """Lease up to ``limit`` due deliveries; also return when the next one falls due.

    ``held`` are the deliveries this worker still has in memory (a call on the wire, or an
    answer waiting to be recorded): their leases are renewed first, so neither this worker nor
    another one takes them back while they are held, however long the store was away.
    ``take_back`` False leaves other workers' expired leases alone for now (see the worker).
    """
    renew_leases(db, owner=owner, now=now, lease_seconds=lease_seconds, held=held)
    if take_back:
        _take_back_expired_leases(db, now)
    rows = select_all(db, _DUE + db.skip_locked("d"), {"now": now, "limit": limit})
    claimed = []
    for row in rows:
        db.execute(
            "UPDATE deliveries SET state = ?, lease_owner = ?, lease_expires_at = ?,"
            " attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?)"
            " WHERE id = ?",
            [DeliveryState.IN_FLIGHT.value, owner, now + lease_seconds, now, row["id"]],
        )
        target = PlatformState.from_json(text(row, "target_json"))
        assert target is not None
        claimed.append(
            ClaimedDelivery(
                id=whole(row, "id"),
                subscription_id=text(row, "subscription_id"),
                target=target,
                acknowledged=PlatformState.from_json(text_or_none(row, "acked_json")),
                attempt=whole(row, "attempts") + 1,
                first_attempt_at=number_or_none(row, "first_attempt_at") or now,
                uncertain=bool(row["uncertain"]),
                cause=text(row, "cause"),
            )
        )
    next_due = number_or_none(
        next(
            iter(
                select_all(
                    db,
                    "SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE state = 'pending'",
                )
            )
        ),
        "due",
    )
    return claimed, next_due


def renew_leases(
    db: Tx, *, owner: str, now: float, lease_seconds: float, held: Collection[int]
) -> int:
    """Extend the leases of ``held`` deliveries still ours; only those past half their lease,
    so a busy worker does not rewrite every lease on every pass."""
    if not held:
        return 0
    ids = sorted(held)
    marks = ", ".join("?" for _ in ids)
    return db.execute(
        f"UPDATE deliveries SET lease_expires_at = ? WHERE id IN ({marks})"  # noqa: S608 - only ?s
        " AND state = ? AND lease_owner = ? AND lease_expires_at < ?",
        [now + lease_seconds, *ids, DeliveryState.IN_FLIGHT.value, owner, now + lease_seconds / 2],
    ).rowcount


def _take_back_expired_leases(db: Tx, now: float) -> None:
    """A lease that ran out belongs to a process that died mid-call: its outcome is unknown."""
    expired = select_all(
        db,
        "SELECT id, subscription_id FROM deliveries"
        " WHERE state = 'in_flight' AND lease_expires_at < ?",
        [now],
    )
    for row in expired:
        newer = db.execute(
            "UPDATE deliveries SET uncertain = 1 WHERE subscription_id = ? AND state = ?"
            " AND id > ?",
            [row["subscription_id"], DeliveryState.PENDING.value, row["id"]],
        ).rowcount
        db.execute(
            "UPDATE deliveries SET state = ?, uncertain = 1, lease_owner = NULL,"
            " lease_expires_at = NULL, next_attempt_at = ?,"
            " finished_at = CASE WHEN ? > 0 THEN ? ELSE NULL END"
            " WHERE id = ? AND state = ? AND lease_expires_at < ?",
            [
                (DeliveryState.SUPERSEDED if newer else DeliveryState.PENDING).value,
                now,
                newer,
                now,
                row["id"],
                DeliveryState.IN_FLIGHT.value,
                now,
            ],
        )


def release_leases(db: Tx, *, owner: str, now: float) -> int:
    """Hand back calls cut short by a shutdown: due now, marked uncertain (they may have landed)."""
    return db.execute(
        "UPDATE deliveries SET state = ?, uncertain = 1, lease_owner = NULL,"
        " lease_expires_at = NULL, next_attempt_at = ? WHERE state = ?"
        " AND lease_owner = ?",
        [DeliveryState.PENDING.value, now, DeliveryState.IN_FLIGHT.value, owner],
    ).rowcount


def complete(
    db: Tx,
    delivery: ClaimedDelivery,
    *,
    owner: str,
    now: float,
    started_at: float,
    state: DeliveryState,
    action: RecordedAction,
    results: Sequence[CallResult],
    next_attempt_at: float | None = None,
    acknowledged: PlatformState | None = None,
    note: str | None = None,
) -> bool:
    """Record the attempt(s) and the delivery's new state; False if our lease was lost."""
    _insert_attempts(db, delivery.id, started_at, action, results)
    last = results[-1] if results else None
    # A call that timed out or lost its connection may still have been applied.
    maybe_applied = last is not None and last.status is None
    if state is DeliveryState.PENDING and _newer_pending(db, delivery):
        # A newer target was queued while this attempt was on the wire: it replaces this one,
        # inheriting any doubt about what the platform now holds.
        db.execute(
            "UPDATE deliveries SET uncertain = CASE WHEN ? > 0 THEN 1 ELSE uncertain END"
            " WHERE subscription_id = ?"
            " AND state = ? AND id > ?",
            [
                int(maybe_applied or delivery.uncertain),
                delivery.subscription_id,
                DeliveryState.PENDING.value,
                delivery.id,
            ],
        )
        state = DeliveryState.SUPERSEDED
    if maybe_applied:
        db.execute("UPDATE deliveries SET uncertain = 1 WHERE id = ?", [delivery.id])
    updated = db.execute(
        "UPDATE deliveries SET state = ?, action = ?, lease_owner = NULL, lease_expires_at = NULL,"
        " next_attempt_at = COALESCE(?, next_attempt_at), finished_at = ?, last_status = ?,"
        " last_error = ? WHERE id = ? AND state = ? AND lease_owner = ?",
        [
            state.value,
            action.value,
            next_attempt_at,
            now if state in FINISHED else None,
            last.status if last else None,
            note or (last.error if last else None),
            delivery.id,
            DeliveryState.IN_FLIGHT.value,
            owner,
        ],
    ).rowcount
    if updated and state is DeliveryState.DONE and acknowledged is not None:
        subscriptions.set_acknowledged(
            db, delivery.subscription_id, acknowledged.to_json(), now=now
        )
    return bool(updated)


def record_step(
    db: Tx,
    delivery: ClaimedDelivery,
    *,
    owner: str,
    now: float,
    started_at: float,
    action: PlatformAction,
    results: Sequence[CallResult],
    reached: PlatformState,
) -> bool:
    """A first step succeeded (an org move's Cancel): make what the platform now holds durable
    before the next call, so a crash in between resumes with that call, not this one.

    The delivery stays in flight under our lease; False if the lease was lost (then the step's
    attempts are kept but the next call is left to whoever holds the delivery now).
    """
    _insert_attempts(db, delivery.id, started_at, action, results)
    held = select_all(
        db,
        "SELECT 1 FROM deliveries WHERE id = ? AND state = 'in_flight' AND lease_owner = ?",
        [delivery.id, owner],
    )
    if not held:
        return False
    # The step's outcome is known, so any doubt from an earlier cut-off attempt is resolved.
    db.execute("UPDATE deliveries SET uncertain = 0 WHERE id = ?", [delivery.id])
    subscriptions.set_acknowledged(db, delivery.subscription_id, reached.to_json(), now=now)
    return True


def _insert_attempts(
    db: Tx,
    delivery_id: int,
    started_at: float,
    action: RecordedAction,
    results: Sequence[CallResult],
) -> None:
    for result in results:
        db.execute(
            "INSERT INTO attempts (delivery_id, started_at, latency_ms, method, url, request_body,"
            " status, outcome, error, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                delivery_id,
                started_at,
                result.latency_ms,
                result.method or action_method(action),
                result.url,
                result.request_body,
                result.status,
                result.outcome,
                result.error,
                result.response_excerpt,
            ],
        )


def _newer_pending(db: Tx, delivery: ClaimedDelivery) -> bool:
    rows = select_all(
        db,
        "SELECT 1 FROM deliveries WHERE subscription_id = ? AND state = 'pending' AND id > ?"
        " LIMIT 1",
        [delivery.subscription_id, delivery.id],
    )
    return any(True for _ in rows)


def action_method(action: RecordedAction) -> str:
    """The HTTP method an attempt row names when the client's result did not."""
    if isinstance(action, PlatformAction):
        return ACTION_METHODS[action]
    return "-"


def enqueue_delivery(
    db: Tx,
    subscription_id: str,
    target: PlatformState,
    *,
    cause: str,
    now: float,
    queued_written: bool = False,
) -> int:
    """Queue the new target; a not-yet-started delivery of the same subscription is superseded.
    ``queued_written``: the caller already put the target in the subscription's ``queued_json``.

    The call itself (Add, Modify or Cancel) is chosen at send time from what the platform last
    acknowledged, so only the newest target ever needs sending.
    """
    pending, superseded_state = DeliveryState.PENDING.value, DeliveryState.SUPERSEDED.value
    superseded = select_all(
        db,
        "SELECT id, uncertain FROM deliveries WHERE subscription_id = ? AND state = ?",
        [subscription_id, pending],
    )
    if superseded:
        db.execute(
            "UPDATE deliveries SET state = ?, finished_at = ?"
            " WHERE subscription_id = ? AND state = ?",
            [superseded_state, now, subscription_id, pending],
        )
    uncertain = int(any(r["uncertain"] for r in superseded))
    target_json = target.to_json()
    inserted = db.select_one(
        "INSERT INTO deliveries (subscription_id, target_json, cause, state, uncertain,"
        " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [subscription_id, target_json, cause, pending, uncertain, now, now],
    )
    assert inserted is not None, "an INSERT … RETURNING answers its row"
    delivery_id = as_int(inserted, "id")
    if not queued_written:
        subscriptions.set_queued(db, subscription_id, target_json)
    db.notify(DELIVERIES_CHANNEL)
    return delivery_id


def supersede(db: Tx, delivery_id: int, *, now: float) -> None:
    """A newer delivery of the subscription replaced this one: it will never be sent."""
    db.execute(
        "UPDATE deliveries SET state = ?, finished_at = ? WHERE id = ?",
        [DeliveryState.SUPERSEDED.value, now, delivery_id],
    )


def requeue(db: Tx, delivery_id: int, *, now: float) -> None:
    """Send a dead letter again from scratch: due now, its attempts counted afresh."""
    db.execute(
        "UPDATE deliveries SET state = ?, attempts = 0, first_attempt_at = NULL,"
        " next_attempt_at = ?, finished_at = NULL WHERE id = ?",
        [DeliveryState.PENDING.value, now, delivery_id],
    )


def make_due(db: Tx, delivery_id: int, *, now: float) -> None:
    """A pending delivery falls due at once instead of at the end of its backoff."""
    db.execute("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", [now, delivery_id])


def supersede_all_unfinished(db: Tx, *, now: float, reason: str) -> list[int]:
    """Supersede every delivery not yet finished, with ``reason`` as its last error: a restored
    backup's outbox is what was pending when the copy was taken, stale by now (see
    ``store.generation``). Returns their ids."""
    unfinished = [DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value]
    rows = select_all(db, "SELECT id FROM deliveries WHERE state IN (?, ?) ORDER BY id", unfinished)
    if rows:
        db.execute(
            "UPDATE deliveries SET state = ?, finished_at = ?, last_error = ?,"
            " lease_owner = NULL, lease_expires_at = NULL WHERE state IN (?, ?)",
            [DeliveryState.SUPERSEDED.value, now, reason, *unfinished],
        )
    return [as_int(row, "id") for row in rows]


def prune_attempts(db: Tx, *, before: float, limit: int) -> int:
    """Delete up to ``limit`` attempts started before ``before`` (retention)."""
    return db.execute(
        "DELETE FROM attempts WHERE id IN"
        " (SELECT id FROM attempts WHERE started_at < ? ORDER BY started_at LIMIT ?)",
        [before, limit],
    ).rowcount


# Finished before the cutoff, and not the newest delivery of its subscription: the page shows
# that one's state and a dead letter stays retryable.
_PRUNABLE_DELIVERIES = """
    FROM deliveries d
    WHERE d.state IN ('done', 'dead', 'superseded')
      AND COALESCE(d.finished_at, d.created_at) < ?
      AND d.id < (SELECT MAX(n.id) FROM deliveries n WHERE n.subscription_id = d.subscription_id)
"""


def prune_deliveries(db: Tx, *, before: float, limit: int) -> int:
    """Delete up to ``limit`` finished deliveries (with their attempts) past retention."""
    sql = f"SELECT d.id {_PRUNABLE_DELIVERIES} ORDER BY d.id LIMIT ?"
    ids = [whole(row, "id") for row in db.select_all(sql, [before, limit])]
    return _delete_deliveries(db, ids)


def count_prunable_deliveries(db: Tx, *, before: float) -> int:
    row = db.select_one(f"SELECT COUNT(*) AS n {_PRUNABLE_DELIVERIES}", [before])
    return as_int(row, "n") if row else 0


def erase_deliveries(db: Tx, subscription_ids: Sequence[str]) -> int:
    """Erasure: every delivery (and attempt) of these subscriptions."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    rows = db.select_all(
        f"SELECT id FROM deliveries WHERE subscription_id IN ({marks})",  # noqa: S608
        list(subscription_ids),
    )
    return _delete_deliveries(db, [whole(row, "id") for row in rows])


def _delete_deliveries(db: Tx, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    marks = ", ".join("?" * len(ids))
    db.execute(f"DELETE FROM attempts WHERE delivery_id IN ({marks})", list(ids))  # noqa: S608
    return db.execute(f"DELETE FROM deliveries WHERE id IN ({marks})", list(ids)).rowcount  # noqa: S608
