"""What monitoring reads of the subscriptions at each scrape (the outbox's own counts are
``delivery_records.outbox_summary``). Reads only, one bounded aggregate query each."""

from __future__ import annotations

from broker.store.engine.tx import Tx
from broker.store.sql import select_one


def conflicting_subscriptions(db: Tx) -> int:
    """Duplicates held back because their org already has one that bills (``decide``)."""
    row = select_one(db, "SELECT COUNT(*) AS n FROM subscriptions WHERE decision LIKE 'conflict:%'")
    return int(row["n"]) if row else 0


def parked_subscriptions(db: Tx) -> int:
    """Subscriptions held back until their org is known (``decide.Mark("parked", ...)``)."""
    row = select_one(db, "SELECT COUNT(*) AS n FROM subscriptions WHERE decision = 'parked'")
    return int(row["n"]) if row else 0
