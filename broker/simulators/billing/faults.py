"""The failures the simulated API can be told to show, checked before any API handler runs: down
(connections dropped unanswered), slow, the next few calls failing with a chosen status, and a
per-minute request limit per organisation answered with 429 and ``Retry-After`` as Zoho does
(docs/contracts.md section 4; the real numbers are [unsure], so the limit is the caller's choice),
and a daily limit per organisation and calendar day answered with 429 and Zoho's code 1070,
without Retry-After (the day must end first).

Every API call is counted here as Zoho counts it. The token endpoint only suffers down and slow.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog
from aiohttp import web

from .api import API_PREFIX, ORG_HEADER, TOKEN_PATH
from .errors import DAILY_LIMIT_EXCEEDED, TOO_MANY_REQUESTS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class ApiCall:
    """One request that reached the API, as Zoho counts it against the organisation's
    per-minute quota."""

    method: str
    path: str
    organization_id: str


@dataclass
class Faults:
    fail_count: int = 0
    fail_status: int = 503
    fail_retry_after: float | None = None
    delay: float = 0.0
    down: bool = False
    per_minute: int | None = None  # None: no request limit
    per_day: int | None = None  # None: no daily limit


def scripted_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {"code": TOO_MANY_REQUESTS, "message": "Too many requests"}
    return {"code": status, "message": "Simulated Zoho Billing failure"}


@dataclass
class RateLimit:
    """Calls admitted in the last minute, per organisation, on an injectable clock."""

    clock: Callable[[], float] = time.monotonic
    admitted: dict[str, deque[float]] = field(default_factory=dict)

    def wait_for(self, organization: str, per_minute: int) -> float | None:
        """None if the call is admitted now (and counted), else the seconds until it would be."""
        now = self.clock()
        window = self.admitted.setdefault(organization, deque())
        while window and now - window[0] >= WINDOW_SECONDS:
            window.popleft()
        if len(window) >= per_minute:
            return WINDOW_SECONDS - (now - window[0])
        window.append(now)
        return None


def daily_limit_body() -> dict[str, Any]:
    return {
        "code": DAILY_LIMIT_EXCEEDED,
        "message": "You have exceeded the maximum number of API calls allowed for the day.",
    }


class FaultGate:
    def __init__(
        self,
        clock: Callable[[], float],
        on_abandon: Callable[[], None],
        today: Callable[[], date] = date.today,
    ) -> None:
        self.faults = Faults()
        self.rate = RateLimit(clock)
        self._today = today
        # API calls admitted per (organisation, calendar day): what a daily limit counts.
        self.calls_by_day: dict[tuple[str, date], int] = {}
        self.api_calls: list[ApiCall] = []
        self.abandoned_requests = 0
        # API requests wait here while it is closed (``hold``), so a test can line callers up
        # behind one request deterministically instead of racing a delay.
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0
        self._on_abandon = on_abandon
        self._log = structlog.get_logger("billing_simulator")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        is_api = path.startswith(API_PREFIX + "/")
        if not (is_api or path == TOKEN_PATH):
            return await handler(request)
        organization = request.headers.get(ORG_HEADER, "")
        if is_api:
            self.api_calls.append(ApiCall(request.method, path, organization))
        faults = self.faults
        if faults.down:  # drop the connection unanswered
            self._log.info("billing_connection_dropped", path=path)
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # written to a closed transport: aiohttp discards it
        if faults.delay > 0 and not await self._delayed(request):
            return web.Response()  # nobody listens: nothing is applied
        if not is_api:
            return await handler(request)
        if not self.open.is_set():
            self.held += 1
            try:
                await self.open.wait()
            finally:
                self.held -= 1
        if faults.fail_count > 0:
            faults.fail_count -= 1
            headers = {}
            if faults.fail_retry_after is not None:
                headers["Retry-After"] = f"{faults.fail_retry_after:g}"
            self._log.info("billing_scripted_failure", path=path, status=faults.fail_status)
            body = scripted_body(faults.fail_status)
            return web.json_response(body, status=faults.fail_status, headers=headers)
        if faults.per_minute is not None:
            wait = self.rate.wait_for(organization, faults.per_minute)
            if wait is not None:
                retry_after = str(max(1, math.ceil(wait)))
                self._log.info("billing_rate_limited", path=path, retry_after=retry_after)
                return web.json_response(
                    scripted_body(429), status=429, headers={"Retry-After": retry_after}
                )
        # Every admitted call counts toward the day, whether or not a limit is set yet.
        key = (organization, self._today())
        if faults.per_day is not None and self.calls_by_day.get(key, 0) >= faults.per_day:
            self._log.info("billing_daily_limit", path=path)
            return web.json_response(daily_limit_body(), status=429)
        self.calls_by_day[key] = self.calls_by_day.get(key, 0) + 1
        return await handler(request)

    async def _delayed(self, request: web.Request) -> bool:
        """Wait the scripted delay; False if the client left meanwhile."""
        try:
            await asyncio.sleep(self.faults.delay)
        except asyncio.CancelledError:  # test servers cancel handlers whose client left
            self._abandon(request.path)
            raise
        if request.transport is None or request.transport.is_closing():
            self._abandon(request.path)
            return False
        return True

    def _abandon(self, path: str) -> None:
        """A delayed request whose client gave up: Zoho would not apply it either."""
        self.abandoned_requests += 1
        self._log.info("billing_request_abandoned", path=path)
        self._on_abandon()
