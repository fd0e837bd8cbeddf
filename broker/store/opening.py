"""The store as the broker opens it: an engine backend given this broker's schema.

``broker.store.engine`` knows no table; here each backend gets the one callable that brings its
schema up to date (the migrations) and PostgreSQL the channel on which a queued delivery wakes
the other replicas. The operator's commands find the PostgreSQL schema's state here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from broker.config import StoreSettings
from broker.store.engine.backend import StoreBackend
from broker.store.engine.sqlite import SqliteStore
from broker.store.migrations.runner import (
    MIGRATIONS_TABLE,
    applied_migrations,
    apply_migrations,
    pending_migrations,
)
from broker.store.outbox import DELIVERIES_CHANNEL

if TYPE_CHECKING:  # psycopg loads only for PostgreSQL
    from broker.store.engine.postgres import PgStore, PgTx


class SqliteOptions(TypedDict, total=False):
    """What ``SqliteStore`` lets the settings choose; an option left out keeps its default."""

    synchronous: str
    group_commit_max: int


class PostgresOptions(TypedDict, total=False):
    """What ``PgStore`` lets the settings choose; an option left out keeps its default."""

    pool_size: int
    connect_timeout: float
    group_commit_max: int


def open_store(settings: StoreSettings) -> StoreBackend:
    """The configured store, not yet opened."""
    url = settings.postgres_url
    if url is None:
        return sqlite_store(
            settings.path,
            synchronous=settings.synchronous,
            group_commit_max=settings.group_commit_max,
        )
    return postgres_store(
        url,
        pool_size=settings.pool_size,
        connect_timeout=settings.connect_timeout_seconds,
        group_commit_max=settings.group_commit_max,
    )


def sqlite_store(path: Path, **options: Unpack[SqliteOptions]) -> SqliteStore:
    """The SQLite store at ``path`` (``options``: ``SqliteStore``'s), not yet opened."""
    return SqliteStore(path, migrate=apply_migrations, **options)


def postgres_store(url: str, **options: Unpack[PostgresOptions]) -> PgStore:
    """The PostgreSQL store at ``url`` (``options``: ``PgStore``'s), not yet opened."""
    from broker.store.engine.postgres import PgStore

    return PgStore(url, migrate=migrate_postgres, wakeup_channel=DELIVERIES_CHANNEL, **options)


def migrate_postgres(tx: PgTx) -> list[str]:
    """Apply the pending migrations (under the advisory lock replicas take); return them."""
    return apply_migrations(tx)


def postgres_schema_status(tx: PgTx) -> tuple[list[str], list[str]] | None:
    """(applied, pending) migration names; None when the database has no broker schema."""
    exists = tx.select_one("SELECT to_regclass(?) AS t", [MIGRATIONS_TABLE])
    if exists is None or exists["t"] is None:
        return None
    applied = applied_migrations(tx)
    return applied, pending_migrations(applied)
