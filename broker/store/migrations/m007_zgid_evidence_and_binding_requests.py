"""Migration 7: what proved a binding's zgid (NULL: made before evidence was required,
so proving nothing) and one binding request per user, decided in /ops.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m007_zgid_evidence_and_binding_requests",
    "ALTER TABLE users ADD COLUMN zgid_evidence TEXT",
    Ddl(
        sqlite="""
            CREATE TABLE binding_requests (
                zuid TEXT PRIMARY KEY,
                zgid TEXT NOT NULL,
                email TEXT,
                display_name TEXT,
                requested_at REAL NOT NULL,
                status TEXT NOT NULL,
                decided_by TEXT,
                decided_at REAL
            )
        """,
        postgresql="""
            CREATE TABLE binding_requests (
                zuid TEXT PRIMARY KEY,
                zgid TEXT NOT NULL,
                email TEXT,
                display_name TEXT,
                requested_at DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                decided_by TEXT,
                decided_at DOUBLE PRECISION
            )
        """,
    ),
    "CREATE INDEX binding_requests_status ON binding_requests (status, requested_at)",
)
