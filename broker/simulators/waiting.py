"""Waiting, in tests and the demo, until a simulator's state meets a condition.

Each waiter holds its own ``asyncio.Event``; the simulator calls ``notify()`` on every change, which
wakes every waiter to check its condition again. Nobody polls or sleeps, and a waiter that gives up
says what the simulator saw, so a failing test explains itself. Shared by both simulators; it knows
nothing of either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ChangeWaiters:
    """Those waiting for a simulator to change, and the way to wake them."""

    def __init__(self) -> None:
        self._events: set[asyncio.Event] = set()

    def notify(self) -> None:
        """Something changed: every waiter checks its condition again."""
        for event in self._events:
            event.set()

    async def wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 - a deadline is the point of this test helper
        *,
        seen: Callable[[], str],
    ) -> None:
        """Return once ``condition()`` holds; after ``timeout`` seconds raise ``TimeoutError``
        saying ``seen()``, what the simulator saw instead."""
        changed = asyncio.Event()
        self._events.add(changed)
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(f"condition not met within {timeout}s; {seen()}") from None
        finally:
            self._events.discard(changed)
