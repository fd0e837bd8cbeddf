"""The operator's way out for dead letters: send them again, unless something newer replaced them.

Each function runs inside a store transaction, like the outbox's; the worker never calls these.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.store import outbox
from broker.store.engine.tx import Tx
from broker.store.sql import select_all, text, whole


@dataclass(frozen=True)
class Requeued:
    """What ``retry_dead`` did: dead letters sent again, and those a newer delivery replaced."""

    requeued: list[int]
    superseded: list[int]


def retry_dead(db: Tx, *, now: float, delivery_id: int | None = None) -> Requeued:
    """Send dead letters again, unless a newer delivery of the subscription replaced them."""
    if delivery_id is None:
        rows = select_all(
            db,
            "SELECT id, subscription_id FROM deliveries WHERE state = ?",
            [outbox.DeliveryState.DEAD.value],
        )
    else:
        rows = select_all(
            db, "SELECT id, subscription_id, state FROM deliveries WHERE id = ?", [delivery_id]
        )
        if not rows:
            raise LookupError(f"no delivery with id {delivery_id}")
        if rows[0]["state"] != outbox.DeliveryState.DEAD:
            raise ValueError(
                f"delivery {delivery_id} is {text(rows[0], 'state')}, not dead:"
                " only dead letters retry"
            )
    requeued: list[int] = []
    superseded: list[int] = []
    for row in rows:
        newer = next(
            iter(
                select_all(
                    db,
                    "SELECT COUNT(*) AS n FROM deliveries WHERE subscription_id = ? AND id > ?"
                    " AND state != ?",
                    [row["subscription_id"], row["id"], outbox.DeliveryState.SUPERSEDED.value],
                )
            )
        )["n"]
        delivery = whole(row, "id")
        if newer:
            outbox.supersede(db, delivery, now=now)
            superseded.append(delivery)
            continue
        outbox.requeue(db, delivery, now=now)
        requeued.append(delivery)
    return Requeued(requeued, superseded)
