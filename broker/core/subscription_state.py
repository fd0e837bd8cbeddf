"""Where a subscription stands after the pipeline's last decision: the ``subscriptions.state``
column. Why it stands there is prose, kept apart in ``subscriptions.reason``, so readers filter on
the state and never parse the prose."""

from __future__ import annotations

from enum import StrEnum


class SubscriptionState(StrEnum):
    """The values ``subscriptions.state`` holds (its CHECK constraint lists the same)."""

    APPLIED = "applied"  # a platform target was chosen: queued, sent, or already held
    PARKED = "parked"  # waits for the org's zgid or zuid, or for a plan quantity the app accepts
    IGNORED = "ignored"  # another product's, or nothing the platform needs
    UNMAPPED_PLAN = "unmapped_plan"  # the app's product, a plan code that maps to no app plan
    CONFLICT = "conflict"  # the org has another subscription the platform keeps: nothing sent
    MISSING_IN_BILLING = "missing_in_billing"  # billing answers 404: treated as deleted, cancelled


# The snapshot source of a subscription billing answered 404 for (reconciliation's Cancel).
MISSING_IN_BILLING_SOURCE = "reconcile:missing_in_billing"
