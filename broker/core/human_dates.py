"""Dates as people type and read them (``2026-11-30``, ``2026-11-30 14:05``), in UTC, for the
operator console's filters and the operator commands; never epoch floats on a screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def parse_when(text: str, *, end_of_day: bool = False) -> float:
    """Epoch seconds for a UTC date or date-time. A bare date as an upper bound means the end of
    that day (``until 2026-11-30`` includes the 30th)."""
    value = text.strip()
    for fmt in FORMATS:
        try:
            moment = datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        if end_of_day and fmt == "%Y-%m-%d":
            moment += timedelta(days=1)
        return moment.timestamp()
    raise ValueError(f"{text!r} is not a date: write 2026-11-30 or 2026-11-30 14:05 (UTC)")


def show_when(epoch: float | None) -> str:
    """``2026-11-30 14:05:09`` (UTC), or ``-`` for none."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
