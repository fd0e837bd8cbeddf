"""The ``webhook_events`` table's writes beyond ingestion: pruning old raw bodies and erasing a
customer's. The row (event id, type, time, outcome) stays forever as the dedup key, as the
README promises; only the body goes, replaced by an empty one and marked ``body_pruned_at``.
Functions run inside store write transactions."""

from __future__ import annotations

from collections.abc import Sequence

from broker.store.engine.tx import Dialect, Tx


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
