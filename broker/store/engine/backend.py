"""What the rest of the broker sees of the store, whichever database is behind it.

``open_store`` picks the backend from ``store.url``: the SQLite file (one process, the
default) or PostgreSQL (any number of replicas). Both run the same job functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from broker.config import StoreSettings
from broker.store.engine.sqlite import Store, StoreStats
from broker.store.engine.tx import Dialect, Tx

T = TypeVar("T")


class StoreBackend(Protocol):
    dialect: Dialect
    stats: StoreStats

    @property
    def local_directory(self) -> Path | None:
        """Where the database's files are on this host (None: on a server of its own)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool = False) -> T: ...

    async def read(self, fn: Callable[[Tx], T]) -> T: ...

    def on_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another process queued a delivery (if the backend can)."""


def open_store(settings: StoreSettings) -> StoreBackend:
    """The configured store, not yet opened."""
    url = settings.postgres_url
    if url is None:
        return Store(
            settings.path,
            synchronous=settings.synchronous,
            group_commit_max=settings.group_commit_max,
        )
    from broker.store.engine.postgres import PgStore  # psycopg loads only for PostgreSQL

    return PgStore(
        url,
        pool_size=settings.pool_size,
        connect_timeout=settings.connect_timeout_seconds,
        group_commit_max=settings.group_commit_max,
    )
