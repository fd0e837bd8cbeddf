"""The simulated organisation's calendar: the day it believes it is, and the timestamps it stamps.

Tests move the day; nothing here reads the wall clock, so a test decides when renewals fall due.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone

OFFSET = timezone(timedelta(hours=5, minutes=30))  # Zoho stamps times in the org's zone
ONE_DAY = timedelta(days=1)
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (Jan 31 + 1 -> Feb 28)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def term(start: date, months: int) -> tuple[date, date]:
    """(last day of the term, next billing date) for a term starting on ``start``."""
    next_billing = add_months(start, months)
    return next_billing - ONE_DAY, next_billing


def zoho_date(day: date | None) -> str:
    return day.isoformat() if day is not None else ""


def stamp_of(moment: datetime) -> str:
    return moment.strftime(STAMP_FORMAT)


class Calendar:
    """The simulator's day, and timestamps that strictly increase however the day moves.

    Every change takes a stamp: the first of a day is 09:00:00 on it, each later one a second
    after the previous stamp, so two changes never share an ``updated_time``.
    """

    def __init__(self, today: date) -> None:
        self.today = today
        self._last: datetime | None = None

    def stamp(self) -> str:
        moment = datetime.combine(self.today, time(9), OFFSET)
        if self._last is not None and moment <= self._last:
            moment = self._last + timedelta(seconds=1)
        self._last = moment
        return stamp_of(moment)

    @staticmethod
    def backdated(day: date) -> str:
        """A stamp on a past ``day`` (noon), as Zoho's backdated actions leave behind; it does
        not move the calendar's own sequence."""
        return stamp_of(datetime.combine(day, time(12), OFFSET))

    @staticmethod
    def later(stamp: str, seconds: float) -> str:
        return stamp_of(datetime.strptime(stamp, STAMP_FORMAT) + timedelta(seconds=seconds))
