"""Migration 9: money events (refunds, chargebacks, voided invoices, credit notes) and the
hold one may put on a subscription's access until billing reports a new term.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m009_money_events",
    Ddl(
        sqlite="""
            CREATE TABLE money_events (
                event_id TEXT PRIMARY KEY REFERENCES webhook_events (event_id),
                event_type TEXT NOT NULL,
                kind TEXT NOT NULL,
                subscription_id TEXT,
                customer_id TEXT,
                amount TEXT,
                of_total TEXT,
                currency_code TEXT,
                verdict TEXT NOT NULL,
                reason TEXT NOT NULL,
                received_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE money_events (
                event_id TEXT PRIMARY KEY REFERENCES webhook_events (event_id),
                event_type TEXT NOT NULL,
                kind TEXT NOT NULL,
                subscription_id TEXT,
                customer_id TEXT,
                amount TEXT,
                of_total TEXT,
                currency_code TEXT,
                verdict TEXT NOT NULL,
                reason TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    "CREATE INDEX money_events_received ON money_events (received_at)",
    "ALTER TABLE subscriptions ADD COLUMN access_hold TEXT",
)
