"""Migration 12: ``subscriptions.state`` (a ``SubscriptionState`` value) and ``reason`` (prose),
converted from the old ``decision`` column, which mixed the two.

The values are written out here rather than taken from the enum: a migration must keep meaning
what it meant when it shipped. ``decision`` and ``parked_reason`` stay, no longer written or
read, so that a broker from before this migration (a replica not yet restarted, a rollback)
still finds its columns; a later migration drops them once none can run (expand, then contract).

The old values, as ``decide`` wrote them: "parked" (the why in ``parked_reason``), "ignored",
"unmapped_plan", "conflict: ..." (the whole text is the why), otherwise the why of the platform
target chosen, which for a subscription billing answered 404 for (its snapshot's source
``reconcile:missing_in_billing``) is its Cancel.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Migration

MIGRATION = Migration(
    "m012_subscription_state_and_reason",
    "ALTER TABLE subscriptions ADD COLUMN state TEXT CHECK (state IN ('applied', 'parked',"
    " 'ignored', 'unmapped_plan', 'conflict', 'missing_in_billing'))",
    "ALTER TABLE subscriptions ADD COLUMN reason TEXT",
    "UPDATE subscriptions SET"
    " state = CASE"
    "  WHEN decision = 'parked' THEN 'parked'"
    "  WHEN decision = 'ignored' THEN 'ignored'"
    "  WHEN decision = 'unmapped_plan' THEN 'unmapped_plan'"
    "  WHEN decision LIKE 'conflict:%' THEN 'conflict'"
    "  WHEN billing_source = 'reconcile:missing_in_billing' THEN 'missing_in_billing'"
    "  ELSE 'applied' END,"
    " reason = CASE"
    "  WHEN decision = 'parked' THEN parked_reason"
    "  WHEN decision IN ('ignored', 'unmapped_plan') THEN NULL"
    "  ELSE decision END"
    " WHERE decision IS NOT NULL",
    "CREATE INDEX subscriptions_state ON subscriptions (state)",
)
