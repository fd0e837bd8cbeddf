"""How many sign-in attempts the console takes: a token bucket per client address and one for
everyone, decided without I/O on an injected clock.

Each attempt takes a token from its address's bucket and from the global one *before* the
password is hashed, so concurrent guesses cannot all slip past a check made before any of them
failed, and a refused attempt costs no scrypt. A right password gives its tokens back and clears
its address. IPv6 addresses count per /64 (one host usually holds a whole /64). Memory is
bounded: at most ``max_addresses`` buckets, the least recently used dropped first; an attacker
who rotates addresses to evict buckets still meets the global bucket.

Per process, not across replicas: with N replicas an address gets N times the budget. Counting
in the database would turn a flood of guesses into a flood of writes on the store that webhooks
need; each replica's bucket already bounds its own hashing, which is what a flood attacks.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum


class LoginRefusal(StrEnum):
    """Why an attempt was refused before its password was looked at (a metric label)."""

    ADDRESS = "address_limit"
    GLOBAL = "global_limit"
    BUSY = "hashing_busy"


@dataclass(frozen=True)
class ThrottleLimits:
    per_address_burst: int
    per_address_per_minute: float
    global_burst: int
    global_per_minute: float
    max_addresses: int


@dataclass(frozen=True)
class Refused:
    reason: LoginRefusal
    retry_after_seconds: float


@dataclass
class _Bucket:
    tokens: float
    updated: float

    def refill(self, now: float, burst: int, per_minute: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(burst), self.tokens + elapsed * per_minute / 60.0)
        self.updated = now

    def wait_for_one(self, per_minute: float) -> float:
        return math.inf if per_minute <= 0 else (1.0 - self.tokens) * 60.0 / per_minute


def address_key(address: str) -> str:
    """The bucket an address counts in: itself, or its /64 for IPv6; text kept as given if
    it is not an address (a Unix socket peer)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class LoginThrottle:
    """Token buckets for sign-in attempts; ``take`` before hashing, ``succeeded`` after."""

    def __init__(self, limits: ThrottleLimits) -> None:
        self._limits = limits
        self._addresses: OrderedDict[str, _Bucket] = OrderedDict()
        self._global: _Bucket | None = None

    def take(self, address: str, now: float) -> Refused | None:
        """Take one attempt for ``address``; a ``Refused`` (and nothing taken) when over."""
        limits = self._limits
        key = address_key(address)
        mine = self._addresses.get(key) or _Bucket(float(limits.per_address_burst), now)
        mine.refill(now, limits.per_address_burst, limits.per_address_per_minute)
        everyone = self._global or _Bucket(float(limits.global_burst), now)
        everyone.refill(now, limits.global_burst, limits.global_per_minute)
        self._global = everyone
        self._remember(key, mine)
        if mine.tokens < 1:
            return Refused(LoginRefusal.ADDRESS, mine.wait_for_one(limits.per_address_per_minute))
        if everyone.tokens < 1:
            return Refused(LoginRefusal.GLOBAL, everyone.wait_for_one(limits.global_per_minute))
        mine.tokens -= 1
        everyone.tokens -= 1
        return None

    def give_back(self, address: str) -> None:
        """An attempt that never reached the password (the hashing was busy) costs nothing."""
        mine = self._addresses.get(address_key(address))
        if mine is not None:
            mine.tokens = min(float(self._limits.per_address_burst), mine.tokens + 1)
        if self._global is not None:
            self._global.tokens = min(float(self._limits.global_burst), self._global.tokens + 1)

    def succeeded(self, address: str) -> None:
        """The right password: its address starts afresh and the global token is returned."""
        self._addresses.pop(address_key(address), None)
        if self._global is not None:
            self._global.tokens = min(float(self._limits.global_burst), self._global.tokens + 1)

    @property
    def tracked_addresses(self) -> int:
        return len(self._addresses)

    def _remember(self, key: str, bucket: _Bucket) -> None:
        self._addresses[key] = bucket
        self._addresses.move_to_end(key)
        while len(self._addresses) > self._limits.max_addresses:
            self._addresses.popitem(last=False)
