"""Test helpers: the ids every test shares, webhook payloads filled in from the literal Zoho
shapes (``tests.support.payloads``), clocks the tests move, and waiting with a deadline."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.support.payloads import set_custom_field, subscription_payload

APP_DOMAIN = "testapp"
ZAPIKEY = "test-zapikey-0123456789abcdef"
ZUID = "60000000001"
ZGID = "70000000001"
CUSTOMER_ID = "900000000000000001"
EMAIL = "owner@example.com"
STORAGE_MONTHLY = "testapp_storage"
STORAGE_YEARLY = "testapp_storage_Y"
# The tests' brokers run in the secure default: signed landing links with this secret.
LINK_SECRET = "page-tests-link-secret-0123456789"

_event_numbers = itertools.count(1)
_clock = itertools.count(1)


def link_signature(
    pairs: list[tuple[str, str]], *, now: float, secret: str = LINK_SECRET
) -> list[tuple[str, str]]:
    """What the Vertical Solution appends to the landing parameters: ts, a fresh nonce, sig."""
    from broker.core.link_signing import sign_link

    stamped = [*pairs, ("ts", str(int(now))), ("nonce", secrets.token_hex(8))]
    return [*stamped[-2:], ("sig", sign_link(stamped, secret))]


def updated_time(step: int | None = None) -> str:
    """Strictly increasing Zoho-style timestamps, so each new event is newer than the last."""
    seconds = next(_clock) if step is None else step
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"2026-11-{1 + hours // 24:02d}T{hours % 24:02d}:{minutes:02d}:{secs:02d}+0530"


def subscription_event(
    event_type: str = "subscription_created",
    *,
    subscription_id: str = "100000000000000001",
    status: str = "live",
    plan_code: str = f"{APP_DOMAIN}_1001",
    quantity: int = 5,
    addons: list[dict[str, Any]] | None = None,
    interval_unit: str = "months",
    updated: str | None = None,
    zuid: str | None = ZUID,
    zgid: str | None = ZGID,
    customer_id: str = CUSTOMER_ID,
    email: str = EMAIL,
    event_id: str | int | None = None,
    **subscription_extra: Any,
) -> dict[str, Any]:
    """A webhook in Zoho Billing's default payload shape (docs/contracts.md §3): the literal
    payload of ``event_type`` with the ids and fields the test chose filled in."""
    payload = subscription_payload(event_type)
    payload["event_id"] = str(event_id if event_id is not None else 80000 + next(_event_numbers))
    subscription = payload["data"]["subscription"]
    subscription.update(
        subscription_id=subscription_id,
        status=status,
        addons=addons or [],
        interval_unit=interval_unit,
        updated_time=updated or updated_time(),
        customer_id=customer_id,
    )
    subscription["plan"].update(plan_code=plan_code, quantity=quantity)
    customer = subscription["customer"]
    customer.update(customer_id=customer_id, email=email)
    set_custom_field(customer["custom_fields"], "zuid", zuid)
    set_custom_field(customer["custom_fields"], "zgid", zgid)
    subscription.update(subscription_extra)
    return payload


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# 2026-12-01 12:00 UTC: a start for a ManualClock after every updated_time the test events carry
# (November 2026), so none of them is refused as being from the future.
DECEMBER_FIRST_NOON = 1796126400.0


@dataclass
class ManualClock:
    """A clock that stands still until the test moves it: durations the broker measures with
    it (an age, a retry delay) are exactly what the test says, however slow the machine."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 5.0,
    interval: float = 0.01,
    message: str = "condition",
) -> None:
    """Poll ``check`` until it holds; fail with ``message`` once ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {message}")
        await asyncio.sleep(interval)  # polling between checks, bounded by the deadline


class ManualTime:
    """The broker's clock and sleep (the delivery worker's naps, timers), moved only by the test.

    A sleep ends once ``advance_to`` reaches its deadline. ``naps`` lists the deadlines of the
    sleeps under way: the moment the broker means to look again, seen without waiting for it.
    """

    def __init__(self, start: float) -> None:
        self.now = start
        self._sleeps: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        entry = (self.now + max(seconds, 0.0), asyncio.get_running_loop().create_future())
        if seconds <= 0:
            entry[1].set_result(None)
        self._sleeps.append(entry)
        try:
            await entry[1]
        finally:
            self._sleeps.remove(entry)

    @property
    def naps(self) -> list[float]:
        return sorted(deadline for deadline, woken in self._sleeps if not woken.done())

    def advance_to(self, moment: float) -> None:
        assert moment >= self.now, "time only moves forward"
        self.now = moment
        for deadline, woken in self._sleeps:
            if deadline <= moment and not woken.done():
                woken.set_result(None)

    async def end_the_nap(self) -> None:
        """Once something naps, move the clock to the nap's end, so it looks for due work
        (a lease that ran out wakes nobody: the worker finds it when it looks)."""
        await eventually(lambda: bool(self.naps), message="the worker napping")
        self.advance_to(self.naps[0])

    async def run_until(self, check: Callable[[], Awaitable[bool]], *, message: str) -> None:
        """End each nap in turn until ``check`` holds (retries without a schedule worth
        asserting)."""

        async def done_or_moved_on() -> bool:
            if await check():
                return True
            if self.naps:
                self.advance_to(self.naps[0])
            return False

        await eventually(done_or_moved_on, message=message)

    async def nap_until(self, moment: float) -> None:
        """Wait (in real time, polling) until the only nap under way ends at ``moment``."""
        await eventually(lambda: self.naps == [moment], message=f"a nap until {moment} {self.naps}")
