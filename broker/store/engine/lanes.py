"""The writer thread's queue of write jobs, in two lanes: urgent jobs are handed out first.

An urgent job records something that already happened outside the database (a platform call's
answer). Taking it before queued ordinary jobs (webhook ingest), in a transaction of its own,
keeps short the time in which a crash would lose it, and so the number of calls a restarted broker
sends again. The lanes never run jobs; ``database.Store`` does.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.store.engine.tx import Tx

Job = Callable[[Tx], Any]


@dataclass
class WriteJob:
    """One ``fn(db)`` and the future of the event loop that waits for it."""

    fn: Job
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    result: Any = None
    error: BaseException | None = None


class WriteLanes:
    """The writer's queue: urgent jobs are always handed out before ordinary ones.

    A lock and two deques rather than two ``queue.SimpleQueue``s, because the writer must block
    until *either* lane has work.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._urgent: deque[WriteJob] = deque()
        self._ordinary: deque[WriteJob] = deque()
        self._closing = False

    def put(self, job: WriteJob, *, urgent: bool) -> None:
        with self._ready:
            (self._urgent if urgent else self._ordinary).append(job)
            self._ready.notify()

    def close(self) -> None:
        """Let the writer finish what is queued, then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify()

    def next_group(self, limit: int) -> tuple[list[WriteJob], bool] | None:
        """Up to ``limit`` jobs of one lane (urgent first) and whether they are urgent; None
        once closed and empty."""
        with self._ready:
            while not self._urgent and not self._ordinary:
                if self._closing:
                    return None
                self._ready.wait()
            urgent = bool(self._urgent)
            lane = self._urgent if urgent else self._ordinary
            return [lane.popleft() for _ in range(min(limit, len(lane)))], urgent
