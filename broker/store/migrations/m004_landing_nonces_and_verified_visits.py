"""Migration 4: used nonces of signed landing links (a replay is refused across restarts
and replicas) and how each binding and claim was verified (NULL: unverified).

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m004_landing_nonces_and_verified_visits",
    Ddl(
        sqlite="""
            CREATE TABLE landing_nonces (
                nonce TEXT PRIMARY KEY,
                used_at REAL NOT NULL,
                expires_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE landing_nonces (
                nonce TEXT PRIMARY KEY,
                used_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    "CREATE INDEX landing_nonces_expiry ON landing_nonces (expires_at)",
    "ALTER TABLE users ADD COLUMN verified_by TEXT",
    "ALTER TABLE landing_claims ADD COLUMN verified_by TEXT",
)
