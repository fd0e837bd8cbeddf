"""Spending the vendor's Zoho Billing quota carefully (about 100 calls a minute per billing org,
shared by every customer's page).

Two in-memory tools, both on an injected clock so tests never wait:

- ``SharedReads``: a per-key cache with a short TTL and single-flight. Concurrent page views of
  one org make one billing read; views within the TTL make none. Only complete reads are kept:
  a read that failed is tried again by the next view.
- ``CallBudget``: a token bucket per page session. A session may make ``burst`` billing calls at
  once, refilled at ``per_minute``; past that, reads show the stored view with a notice and
  actions are refused with a 429 and a Retry-After, so one visitor cannot spend everyone's quota.

Neither holds anything secret; both are bounded (least recently used keys are dropped).
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
MAX_KEYS = 10_000  # sessions or orgs remembered; older ones are forgotten (and start afresh)


@dataclass(frozen=True)
class Read(Generic[V]):
    """What a read produced, and whether it is complete enough to reuse."""

    value: V
    complete: bool


class SharedReads(Generic[V]):
    def __init__(self, *, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._fresh: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[Read[V]]] = {}
        self._waiting: dict[str, int] = {}

    def fresh(self, key: str) -> V | None:
        """The value read for ``key`` within the TTL, if any."""
        kept = self._fresh.get(key)
        if kept is None:
            return None
        if self._clock() - kept[0] >= self._ttl:
            del self._fresh[key]
            return None
        return kept[1]

    def forget(self, key: str) -> None:
        """Drop what was read for ``key``: it changed (a checkout was paid), read it again."""
        self._fresh.pop(key, None)

    def in_flight(self, key: str) -> bool:
        return key in self._in_flight

    def waiting(self, key: str) -> int:
        """Callers waiting on the read in flight for ``key`` (what single-flight saves)."""
        return self._waiting.get(key, 0)

    async def get(self, key: str, read: Callable[[], Awaitable[Read[V]]]) -> V:
        """The fresh value for ``key``; else join the read in flight; else run ``read``."""
        kept = self.fresh(key)
        if kept is not None:
            return kept
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(key, read))
            self._in_flight[key] = task
        # A waiter that gives up (its browser left) must not cancel the others' read.
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            outcome = await asyncio.shield(task)
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
        return outcome.value

    async def _run(self, key: str, read: Callable[[], Awaitable[Read[V]]]) -> Read[V]:
        try:
            outcome = await read()
            if outcome.complete and self._ttl > 0:
                self._fresh[key] = (self._clock(), outcome.value)
                self._fresh.move_to_end(key)
                while len(self._fresh) > MAX_KEYS:
                    self._fresh.popitem(last=False)
            return outcome
        finally:
            self._in_flight.pop(key, None)


class CallBudget:
    """A token bucket per key (a page session): ``take`` spends tokens or says how long to wait."""

    def __init__(self, *, burst: int, per_minute: float, clock: Callable[[], float]) -> None:
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str, calls: int = 1) -> float | None:
        """Spend ``calls`` tokens and return None; or spend nothing and return the seconds
        until enough tokens are back."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - at) * self._rate)
        wanted = min(float(calls), self._burst)  # a read bigger than the burst needs it full
        if tokens < wanted:
            self._remember(key, tokens, now)
            return (wanted - tokens) / self._rate
        self._remember(key, tokens - wanted, now)
        return None

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)


def wait_in_words(seconds: float) -> str:
    """A wait as a person reads it: "20 seconds", "a minute", "3 minutes"."""
    whole = max(1, math.ceil(seconds))
    if 55 <= whole <= 65:
        return "a minute"
    if whole > 65:
        return f"{math.ceil(whole / 60)} minutes"
    return f"{whole} seconds"


def retry_after_value(seconds: float) -> str:
    """A Retry-After header's value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))
