"""Client of the Developer Console Subscription APIs (docs/contracts.md §1).

It makes one call and says what happened, in three kinds the delivery worker acts on:
``success`` (2xx and no failure marker), ``retry`` (could not reach it, timed out, 429 or 5xx) and
``reject`` (it said no: any other status, or a ``Failure`` answer). It never retries by itself and
never lets the zapikey out: every URL it reports is redacted, and so is every response excerpt
and error (a platform may echo the request URL, key and all, in its error body). What an answer
means is decided in ``broker.core.platform_answers``, without I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from broker.clients.http import parse_retry_after
from broker.config import PlatformSettings
from broker.core.mapping import PlatformCall
from broker.core.platform_answers import CallResult, classify_response, describe_failure
from broker.redaction import REDACTED, Redactor

EXCERPT_CHARS = 2000
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class SlowCallCheck:
    """Asked once a call has been on the wire ``after_seconds``: ``may_continue()`` False cuts
    it short (reported as ``retry``: it may or may not have been applied)."""

    after_seconds: float
    may_continue: Callable[[], bool]


class PlatformClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: PlatformSettings,
        *,
        redactor: Redactor | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        # The zapikey is what the platform can echo; callers may add every other secret.
        self._redact = redactor or Redactor([settings.zapikey.get_secret_value()])
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_seconds)

    def url(self, zgid: str, planid: str) -> str:
        return (
            f"{self._settings.resolved_base_url}/crm/v2/settings/subscription/"
            f"{quote(zgid, safe='')}/plan/{quote(planid, safe='')}"
        )

    async def send(self, call: PlatformCall, *, slow: SlowCallCheck | None = None) -> CallResult:
        """One call, ended by ``platform.request_timeout_seconds`` at the latest, or earlier
        when ``slow`` says so."""
        started = time.perf_counter()
        exchange = asyncio.ensure_future(self._exchange(call, started))
        try:
            if slow is not None:
                await asyncio.wait({exchange}, timeout=slow.after_seconds)
                if not exchange.done() and not slow.may_continue():
                    exchange.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await exchange
                    return CallResult(
                        "retry",
                        None,
                        round((time.perf_counter() - started) * 1000, 2),
                        self._shown_url(call),
                        json.dumps(call.body, separators=(",", ":")),
                        error=(
                            f"cut short after {slow.after_seconds:g} s on the wire: too many "
                            "slow calls already (delivery.slow_calls)"
                        ),
                        method=call.method,
                    )
            return await exchange
        finally:
            if not exchange.done():  # we were cancelled (shutdown): so is the call
                exchange.cancel()

    def _shown_url(self, call: PlatformCall) -> str:
        """What logs and the database may show: the key redacted."""
        return f"{self.url(call.zgid, call.planid)}?zapikey={REDACTED}"

    async def _exchange(self, call: PlatformCall, started: float) -> CallResult:
        url = self.url(call.zgid, call.planid)
        shown_url = self._shown_url(call)
        body = json.dumps(call.body, separators=(",", ":"))
        params = {"zapikey": self._settings.zapikey.get_secret_value()}

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            async with self._session.request(
                call.method,
                url,
                params=params,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            ) as response:
                # Keep what an operator needs to read; never buffer an unbounded body.
                raw = await response.content.read(MAX_RESPONSE_BYTES)
                text = raw.decode(response.get_encoding(), errors="replace")
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return CallResult(
                "retry", None, elapsed(), shown_url, body, error="timed out", method=call.method
            )
        except aiohttp.ClientError as exc:
            # aiohttp puts the URL (with the zapikey) into some messages: report the class only.
            return CallResult(
                "retry",
                None,
                elapsed(),
                shown_url,
                body,
                error=f"{type(exc).__name__}",
                method=call.method,
            )
        # Redact the whole text before cutting it, so no key is left half-visible at the cut.
        excerpt = self._redact(text)[:EXCERPT_CHARS]
        outcome = classify_response(status, text)
        return CallResult(
            outcome,
            status,
            elapsed(),
            shown_url,
            body,
            response_excerpt=excerpt,
            error=None if outcome == "success" else self._redact(describe_failure(status, text)),
            retry_after=retry_after if outcome == "retry" else None,
            method=call.method,
        )
