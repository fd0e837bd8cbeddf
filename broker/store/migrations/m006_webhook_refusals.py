"""Migration 6: refused webhook requests, counted per day and reason (never a row per
request).

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m006_webhook_refusals",
    Ddl(
        sqlite="""
            CREATE TABLE webhook_refusals (
                day TEXT NOT NULL,
                reason TEXT NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (day, reason)
            )
        """,
        postgresql="""
            CREATE TABLE webhook_refusals (
                day TEXT NOT NULL,
                reason TEXT NOT NULL,
                count BIGINT NOT NULL,
                PRIMARY KEY (day, reason)
            )
        """,
    ),
)
