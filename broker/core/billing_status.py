"""Zoho Billing's subscription statuses, named once for every module that reads one.

Pure data. ``mapping`` groups them by what they mean for the platform, ``policy`` by what the
page allows; both use this enum so a misspelt status is a type error, not a silent miss.
"""

from __future__ import annotations

from enum import StrEnum


class BillingStatus(StrEnum):
    """Zoho Billing's subscription statuses (docs/contracts.md §3), paused, and the broker's own
    ``deleted`` (a ``subscription_deleted`` event)."""

    LIVE = "live"
    TRIAL = "trial"
    FUTURE = "future"
    DUNNING = "dunning"
    UNPAID = "unpaid"
    NON_RENEWING = "non_renewing"
    CANCELLED = "cancelled"
    CANCELLED_FROM_DUNNING = "cancelled_from_dunning"
    EXPIRED = "expired"
    TRIAL_EXPIRED = "trial_expired"
    CREATION_FAILED = "creation_failed"
    PAUSED = "paused"
    DELETED = "deleted"


class UnknownStatus(str):
    """A status word this broker does not know (Zoho may add one), lower-cased: it never equals
    a ``BillingStatus``, so nothing acts on it, and its text is kept for the warning and the
    stored row."""

    __slots__ = ()


# The longest status word taken: a bound keeps absurd text out of the stored row and logs.
MAX_STATUS_CHARS = 50


def parse_status(value: object) -> BillingStatus | UnknownStatus:
    """Billing's status word, read once: lower-cased, a known ``BillingStatus`` or else an
    ``UnknownStatus``, so no other module compares or lower-cases the raw text."""
    if isinstance(value, BillingStatus | UnknownStatus):
        return value
    if not isinstance(value, str) or not value or len(value) > MAX_STATUS_CHARS:
        raise ValueError(f"must be a status word of 1 to {MAX_STATUS_CHARS} characters")
    return read_status(value)


def read_status(text: str) -> BillingStatus | UnknownStatus:
    """A status word, whatever its case: the model's, or one kept as text (a stored column)."""
    if isinstance(text, BillingStatus | UnknownStatus):
        return text
    word = text.lower()
    try:
        return BillingStatus(word)
    except ValueError:
        return UnknownStatus(word)
