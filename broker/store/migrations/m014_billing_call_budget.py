"""Migration 14: the daily billing budget (``store.billing_budget``): calls counted per budget day
and per minute, shared by replicas and kept across restarts, and a quota answer billing gave.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m014_billing_call_budget",
    Ddl(
        sqlite="""
            CREATE TABLE billing_call_budget (
                period TEXT PRIMARY KEY,
                calls INTEGER NOT NULL DEFAULT 0,
                quota_until REAL,
                quota_reason TEXT,
                updated_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE billing_call_budget (
                period TEXT PRIMARY KEY,
                calls BIGINT NOT NULL DEFAULT 0,
                quota_until DOUBLE PRECISION,
                quota_reason TEXT,
                updated_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
)
