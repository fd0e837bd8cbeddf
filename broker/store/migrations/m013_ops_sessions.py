"""Migration 13: the console's sign-in sessions, one row each, so signing out (or a new operator
password) ends a session for every replica and across restarts.

``session_key`` is a SHA-256 of the id in the signed cookie (a copy of the table opens nothing);
``credential`` a digest of ``ops.password_hash`` at sign-in, so another hash ends the session.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m013_ops_sessions",
    Ddl(
        sqlite="""
            CREATE TABLE ops_sessions (
                session_key TEXT PRIMARY KEY,
                operator TEXT NOT NULL,
                credential TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE ops_sessions (
                session_key TEXT PRIMARY KEY,
                operator TEXT NOT NULL,
                credential TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    "CREATE INDEX ops_sessions_expires ON ops_sessions (expires_at)",
)
