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
