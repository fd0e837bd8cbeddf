"""What the rest of the broker sees of the store, whichever database is behind it.

Both backends (``sqlite.SqliteStore``, ``postgres.PgStore``) run the same job functions with the
same write semantics (``writer``); ``broker.store.opening`` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from broker.store.engine.tx import Dialect, Tx
from broker.store.engine.writer import StoreStats

T = TypeVar("T")


class StoreBackend(Protocol):
    dialect: Dialect

    @property
    def stats(self) -> StoreStats: ...

    @property
    def local_directory(self) -> Path | None:
        """Where the database's files are on this host (None: on a server of its own)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool = False) -> T: ...

    async def read(self, fn: Callable[[Tx], T]) -> T: ...

    def on_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another process queued a delivery (if the backend can)."""
