"""What the store tests share: a job that inserts a user, the users the store holds, and a group
of writes held behind a busy writer so they commit as one transaction."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from broker.store.engine.backend import StoreBackend
from broker.store.engine.sqlite import SqliteStore
from broker.store.engine.tx import Tx


def insert_user(zuid: str) -> Callable[[Tx], str]:
    """A write job that adds one user and answers its zuid."""

    def job(db: Tx) -> str:
        db.execute(
            "INSERT INTO users (zuid, zgid, first_seen_at, last_seen_at) VALUES (?, '1', 0, 0)",
            [zuid],
        )
        return zuid

    return job


async def users(store: StoreBackend) -> list[str]:
    """The zuids the store holds, in order."""
    rows = await store.read(lambda db: db.select_all("SELECT zuid FROM users ORDER BY zuid"))
    return [str(row["zuid"]) for row in rows]


async def held_group(store: SqliteStore, jobs: list[Any]) -> list[Any]:
    """Submit ``jobs`` while the writer is busy, so they are committed as one group."""
    started, gate = threading.Event(), threading.Event()

    def block(db: Any) -> None:
        started.set()
        gate.wait(5)

    blocker = asyncio.ensure_future(store.write(block))
    # Wait (off the loop) until the writer is inside the blocker, then queue the group.
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    pending = [asyncio.ensure_future(store.write(job)) for job in jobs]
    await asyncio.sleep(0)  # the futures' put() calls run before the gate opens
    gate.set()
    await blocker
    return await asyncio.gather(*pending, return_exceptions=True)
