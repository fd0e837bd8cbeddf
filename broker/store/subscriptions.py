"""The ``subscriptions`` table's owner (its other writes are moving here). Functions run inside
store write transactions."""

from __future__ import annotations

from collections.abc import Sequence

from broker.store.engine.tx import Tx


def erase_subscriptions(db: Tx, subscription_ids: Sequence[str]) -> int:
    """Erasure: these subscription rows (their deliveries must be gone first)."""
    if not subscription_ids:
        return 0
    marks = ", ".join("?" * len(subscription_ids))
    return db.execute(
        f"DELETE FROM subscriptions WHERE subscription_id IN ({marks})",  # noqa: S608
        list(subscription_ids),
    ).rowcount
