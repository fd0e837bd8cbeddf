"""Refused webhook requests, counted per UTC day and reason (``webhook_refusals``). The web
process counts in memory and adds its counts here at most once a minute, so unauthenticated
traffic never causes a write per request. Functions run inside store transactions."""

from __future__ import annotations

from collections.abc import Mapping

from broker.store.engine.tx import Tx
from broker.store.sql import as_int, select_all, text

DayReason = tuple[str, str]  # ("2026-11-30", "bad_key")


def add_refusals(db: Tx, counts: Mapping[DayReason, int]) -> None:
    """Add these counts to the stored ones (a row per day and reason)."""
    for (day, reason), count in counts.items():
        db.execute(
            "INSERT INTO webhook_refusals (day, reason, count) VALUES (?, ?, ?)"
            " ON CONFLICT (day, reason) DO UPDATE SET count = count + excluded.count",
            [day, reason, count],
        )


def refusal_counts(db: Tx, *, first_day: str | None, last_day: str | None) -> dict[str, int]:
    """Refusals by reason over these days (inclusive; None: unbounded)."""
    rows = select_all(
        db,
        "SELECT reason, SUM(count) AS total FROM webhook_refusals"
        " WHERE (CAST(? AS TEXT) IS NULL OR day >= ?) AND (CAST(? AS TEXT) IS NULL OR day <= ?)"
        " GROUP BY reason",
        [first_day, first_day, last_day, last_day],
    )
    return {text(row, "reason"): as_int(row, "total") for row in rows}
