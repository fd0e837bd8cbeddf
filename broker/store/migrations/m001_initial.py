"""Migration 1: the first schema: webhook events (raw body kept), customers, users,
subscriptions, landing claims, and the outbox (deliveries and their attempts).

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m001_initial",
    Ddl(
        sqlite="""
            CREATE TABLE webhook_events (
                event_id TEXT PRIMARY KEY,
                event_type TEXT NOT NULL,
                subscription_id TEXT,
                received_at REAL NOT NULL,
                outcome TEXT NOT NULL,
                reason TEXT,
                content_type TEXT,
                request_id TEXT,
                raw_body BLOB NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE webhook_events (
                event_id TEXT PRIMARY KEY,
                event_type TEXT NOT NULL,
                subscription_id TEXT,
                received_at DOUBLE PRECISION NOT NULL,
                outcome TEXT NOT NULL,
                reason TEXT,
                content_type TEXT,
                request_id TEXT,
                raw_body BYTEA NOT NULL
            )
        """,
    ),
    "CREATE INDEX webhook_events_subscription ON webhook_events (subscription_id)",
    Ddl(
        sqlite="""
            CREATE TABLE customers (
                customer_id TEXT PRIMARY KEY,
                zgid TEXT,
                zuid TEXT,
                email TEXT,
                display_name TEXT,
                updated_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE customers (
                customer_id TEXT PRIMARY KEY,
                zgid TEXT,
                zuid TEXT,
                email TEXT,
                display_name TEXT,
                updated_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    Ddl(
        sqlite="""
            CREATE TABLE users (
                zuid TEXT PRIMARY KEY,
                zgid TEXT NOT NULL,
                email TEXT,
                display_name TEXT,
                first_name TEXT,
                last_name TEXT,
                company_name TEXT,
                first_seen_at REAL NOT NULL,
                last_seen_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE users (
                zuid TEXT PRIMARY KEY,
                zgid TEXT NOT NULL,
                email TEXT,
                display_name TEXT,
                first_name TEXT,
                last_name TEXT,
                company_name TEXT,
                first_seen_at DOUBLE PRECISION NOT NULL,
                last_seen_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    "CREATE INDEX users_zgid ON users (zgid)",
    Ddl(
        sqlite="""
            CREATE TABLE subscriptions (
                subscription_id TEXT PRIMARY KEY,
                customer_id TEXT,
                zgid TEXT,
                zuid TEXT,
                bound_email TEXT,
                status TEXT,
                plan_code TEXT,
                billing_json TEXT,
                billing_updated_at REAL,
                billing_source TEXT,
                decision TEXT,
                queued_json TEXT,
                acked_json TEXT,
                parked_reason TEXT,
                updated_at REAL NOT NULL
            )
        """,
        postgresql="""
            CREATE TABLE subscriptions (
                subscription_id TEXT PRIMARY KEY,
                customer_id TEXT,
                zgid TEXT,
                zuid TEXT,
                bound_email TEXT,
                status TEXT,
                plan_code TEXT,
                billing_json TEXT,
                billing_updated_at DOUBLE PRECISION,
                billing_source TEXT,
                decision TEXT,
                queued_json TEXT,
                acked_json TEXT,
                parked_reason TEXT,
                updated_at DOUBLE PRECISION NOT NULL
            )
        """,
    ),
    "CREATE INDEX subscriptions_zgid ON subscriptions (zgid)",
    Ddl(
        sqlite="""
            CREATE TABLE landing_claims (
                subscription_id TEXT NOT NULL,
                zgid TEXT NOT NULL,
                zuid TEXT NOT NULL,
                email TEXT,
                claimed_at REAL NOT NULL,
                PRIMARY KEY (subscription_id, zgid)
            )
        """,
        postgresql="""
            CREATE TABLE landing_claims (
                subscription_id TEXT NOT NULL,
                zgid TEXT NOT NULL,
                zuid TEXT NOT NULL,
                email TEXT,
                claimed_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (subscription_id, zgid)
            )
        """,
    ),
    "CREATE INDEX subscriptions_customer ON subscriptions (customer_id)",
    Ddl(
        sqlite="""
            CREATE TABLE deliveries (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                subscription_id TEXT NOT NULL REFERENCES subscriptions (subscription_id),
                target_json TEXT NOT NULL,
                cause TEXT NOT NULL,
                state TEXT NOT NULL CHECK (
                    state IN ('pending', 'in_flight', 'done', 'dead', 'superseded')
                ),
                action TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                uncertain INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                first_attempt_at REAL,
                next_attempt_at REAL NOT NULL,
                lease_owner TEXT,
                lease_expires_at REAL,
                finished_at REAL,
                last_status INTEGER,
                last_error TEXT
            )
        """,
        postgresql="""
            CREATE TABLE deliveries (
                id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                subscription_id TEXT NOT NULL REFERENCES subscriptions (subscription_id),
                target_json TEXT NOT NULL,
                cause TEXT NOT NULL,
                state TEXT NOT NULL CHECK (
                    state IN ('pending', 'in_flight', 'done', 'dead', 'superseded')
                ),
                action TEXT,
                attempts BIGINT NOT NULL DEFAULT 0,
                uncertain BIGINT NOT NULL DEFAULT 0,
                created_at DOUBLE PRECISION NOT NULL,
                first_attempt_at DOUBLE PRECISION,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                lease_owner TEXT,
                lease_expires_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                last_status BIGINT,
                last_error TEXT
            )
        """,
    ),
    "CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at)",
    "CREATE INDEX deliveries_subscription ON deliveries (subscription_id, state)",
    Ddl(
        sqlite="""
            CREATE TABLE attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
                started_at REAL NOT NULL,
                latency_ms REAL NOT NULL,
                method TEXT NOT NULL,
                url TEXT NOT NULL,
                request_body TEXT NOT NULL,
                status INTEGER,
                outcome TEXT NOT NULL,
                error TEXT,
                response_excerpt TEXT
            )
        """,
        postgresql="""
            CREATE TABLE attempts (
                id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
                started_at DOUBLE PRECISION NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL,
                method TEXT NOT NULL,
                url TEXT NOT NULL,
                request_body TEXT NOT NULL,
                status BIGINT,
                outcome TEXT NOT NULL,
                error TEXT,
                response_excerpt TEXT
            )
        """,
    ),
    "CREATE INDEX attempts_delivery ON attempts (delivery_id)",
)
