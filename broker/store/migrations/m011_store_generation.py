"""Migration 11: the store's generation marker (``store.generation``), so a broker started on a
restored backup knows its outbox is stale.

No row is written: a store without one is generation 1 with no restore pending (a row here
would make a fresh PostgreSQL target look non-empty to ``broker copy-store``).

Shipped: never edit it."""

from __future__ import annotations

from broker.store.migrations.migration import Ddl, Migration

MIGRATION = Migration(
    "m011_store_generation",
    Ddl(
        sqlite="""
            CREATE TABLE store_generation (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                generation INTEGER NOT NULL,
                restore_stage TEXT CHECK (restore_stage IN ('restored', 'superseded')),
                restored_from INTEGER,
                backup_taken_at REAL,
                marked_at REAL,
                marked_by TEXT
            )
        """,
        postgresql="""
            CREATE TABLE store_generation (
                id BIGINT PRIMARY KEY CHECK (id = 1),
                generation BIGINT NOT NULL,
                restore_stage TEXT CHECK (restore_stage IN ('restored', 'superseded')),
                restored_from BIGINT,
                backup_taken_at DOUBLE PRECISION,
                marked_at DOUBLE PRECISION,
                marked_by TEXT
            )
        """,
    ),
)
