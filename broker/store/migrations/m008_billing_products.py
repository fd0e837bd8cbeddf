"""Migration 8: the app's billing products as learned from billing's plans.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m008_billing_products",
    Ddl(
        sqlite="""
            CREATE TABLE billing_products (
                product_id TEXT PRIMARY KEY,
                plan_code TEXT NOT NULL,
                learned_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE billing_products (
                product_id TEXT PRIMARY KEY,
                plan_code TEXT NOT NULL,
                learned_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
)
