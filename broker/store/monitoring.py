"""What monitoring reads of the subscriptions at each scrape (the outbox's own counts are
``delivery_records.outbox_summary``). Reads only, one bounded aggregate query each."""

from __future__ import annotations

from broker.core.subscription_state import SubscriptionState
from broker.store.engine.tx import Tx
from broker.store.sql import as_int, select_one


def conflicting_subscriptions(db: Tx) -> int:
    """Duplicates held back because their org already has one that bills (``decide``)."""
    return _count(db, SubscriptionState.CONFLICT)


def parked_subscriptions(db: Tx) -> int:
    """Subscriptions held back until their org (or an accepted quantity) is known."""
    return _count(db, SubscriptionState.PARKED)


def _count(db: Tx, state: SubscriptionState) -> int:
    row = select_one(db, "SELECT COUNT(*) AS n FROM subscriptions WHERE state = ?", [state.value])
    return as_int(row, "n") if row else 0
