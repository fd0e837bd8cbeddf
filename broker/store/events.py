"""The webhook_events table's writes: each authenticated webhook recorded once, forever, before
it is processed, then what became of it. The only module that changes its rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.store.engine.tx import Dialect, Tx


@dataclass(frozen=True)
class ReceivedEvent:
    """An authenticated webhook as it arrived, before anything is decided about it."""

    event_id: str
    event_type: str
    subscription_id: str | None
    received_at: float
    content_type: str
    request_id: str
    raw_body: bytes


def record_received(db: Tx, event: ReceivedEvent) -> bool:
    """Keep the webhook; False when its event id was received before (deduplicated forever)."""
    inserted = db.execute(
        "INSERT INTO webhook_events (event_id, event_type, subscription_id, received_at, outcome,"
        " content_type, request_id, raw_body) VALUES (?, ?, ?, ?, 'received', ?, ?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        [
            event.event_id,
            event.event_type,
            event.subscription_id,
            event.received_at,
            event.content_type,
            event.request_id,
            event.raw_body,
        ],
    ).rowcount
    return bool(inserted)


def record_outcome(db: Tx, event_id: str, outcome: str, reason: str | None) -> None:
    """What the pipeline made of the event, with why."""
    db.execute(
        "UPDATE webhook_events SET outcome = ?, reason = ? WHERE event_id = ?",
        [outcome, reason, event_id],
    )


def mark_found_by_reconcile(db: Tx, event_id: str, request_id: str) -> None:
    """The event was fed by a reconciliation run (``request_id``), not posted by billing."""
    db.execute(
        "UPDATE webhook_events SET source = 'reconcile' WHERE event_id = ? AND request_id = ?",
        [event_id, request_id],
    )


def prune_bodies(db: Tx, *, before: float, now: float, limit: int) -> int:
    """Empty up to ``limit`` raw bodies received before ``before``; return how many.

    On SQLite an emptied row would stay where it was, leaving every page a third used and none
    free, so later writes could not reuse the space and the file would keep growing. So each
    row is written again (``INSERT OR REPLACE``: one statement, so money_events' foreign key
    still holds at its end) and moves to the table's end; the old pages empty out whole and
    join the freelist, which the next writes take first. PostgreSQL reuses an updated row's old
    space itself once (auto)vacuum has passed.
    """
    rows = db.select_all(
        "SELECT * FROM webhook_events WHERE body_pruned_at IS NULL AND received_at < ?"
        " ORDER BY received_at LIMIT ?",
        [before, limit],
    )
    if not rows:
        return 0
    if db.dialect is Dialect.POSTGRESQL:
        marks = ", ".join("?" * len(rows))
        sql = (
            "UPDATE webhook_events SET raw_body = ?, body_pruned_at = ?"  # noqa: S608
            f" WHERE event_id IN ({marks})"
        )
        return db.execute(sql, [b"", now, *(row["event_id"] for row in rows)]).rowcount
    # Every column the row has (a later migration's too), so the rewrite loses nothing.
    columns = list(rows[0])
    sql = (
        f"INSERT OR REPLACE INTO webhook_events ({', '.join(columns)})"  # noqa: S608
        f" VALUES ({', '.join('?' * len(columns))})"
    )
    for row in rows:
        db.execute(sql, [*{**row, "raw_body": b"", "body_pruned_at": now}.values()])
    return len(rows)


def forget_subscriptions(db: Tx, subscription_ids: Sequence[str], *, now: float) -> int:
    """Erasure: empty the bodies of these subscriptions' events and unlink them (the event id
    stays, so a resent webhook is still a duplicate and recreates nothing)."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    sql = (
        "UPDATE webhook_events SET raw_body = ?, body_pruned_at = ?, subscription_id = NULL,"  # noqa: S608
        f" reason = NULL, request_id = NULL WHERE subscription_id IN ({marks})"
    )
    return db.execute(sql, [b"", now, *subscription_ids]).rowcount
