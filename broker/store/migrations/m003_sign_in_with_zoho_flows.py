"""Migration 3: Sign in with Zoho's started flows, keyed by their random state and taken
once; in the database so any replica can finish a sign-in another one started.

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m003_sign_in_with_zoho_flows",
    Ddl(
        sqlite="""
            CREATE TABLE oidc_flows (
                state TEXT PRIMARY KEY,
                browser_hash TEXT NOT NULL,
                nonce TEXT NOT NULL,
                code_verifier TEXT,
                redirect_uri TEXT NOT NULL,
                hints_json TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE oidc_flows (
                state TEXT PRIMARY KEY,
                browser_hash TEXT NOT NULL,
                nonce TEXT NOT NULL,
                code_verifier TEXT,
                redirect_uri TEXT NOT NULL,
                hints_json TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    "CREATE INDEX oidc_flows_expires ON oidc_flows (expires_at)",
)
