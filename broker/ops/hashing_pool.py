"""The console's password hashing, on threads of its own with a bounded queue.

scrypt takes tens of milliseconds of CPU and 16 MiB per check. On the default executor a flood
of sign-ins queues ahead of everything else that uses it (``/readyz``'s disk probe, the store's
start-up), so /readyz took seconds. Here the hashing has ``threads`` threads and at most
``queue`` jobs waiting; one more is refused at once (``HashingBusy``), never queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
THREAD_PREFIX = "ops-password"


class HashingBusy(Exception):
    """Every hashing thread is busy and the queue is full: answer 429, do not wait."""


class HashingPool:
    """Runs a job on its own threads; at most ``threads + queue`` jobs in flight."""

    def __init__(self, *, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=THREAD_PREFIX)
        self._capacity = threads + queue
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, job: Callable[[], T]) -> T:
        """``job()`` on a hashing thread; ``HashingBusy`` at once when the pool is full."""
        if self._in_flight >= self._capacity:
            raise HashingBusy
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        future: Future[T] = self._executor.submit(job)
        # Counted until the thread is done with it, even if the request awaiting it went away.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._finished))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _finished(self) -> None:
        self._in_flight -= 1
