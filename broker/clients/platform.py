"""Client of the Developer Console Subscription APIs (contracts.md §1).

It makes one call and says what happened, in three kinds the delivery worker acts on:
``success`` (2xx and no failure marker), ``retry`` (could not reach it, timed out, 429 or 5xx) and
``reject`` (it said no: any other status, or a ``Failure`` answer). It never retries by itself and
never lets the zapikey out: every URL it reports is redacted, and so is every response excerpt
and error (a platform may echo the request URL, key and all, in its error body).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from broker.config import PlatformSettings
from broker.core.mapping import PlatformCall
from broker.redaction import REDACTED, Redactor

FAILURE_MARKERS = frozenset({"failure", "failed", "error"})
RETRYABLE_STATUSES = frozenset({408, 425, 429})
EXCERPT_CHARS = 2000
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CallResult:
    outcome: Literal["success", "retry", "reject"]
    status: int | None
    latency_ms: float
    url: str  # redacted
    request_body: str
    response_excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None
    method: str = ""  # the HTTP method sent, so a fallback's attempts are recorded truly


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

    async def send(self, call: PlatformCall) -> CallResult:
        url = self.url(call.zgid, call.planid)
        shown_url = f"{url}?zapikey={REDACTED}"  # what logs and the database may show
        body = json.dumps(call.body, separators=(",", ":"))
        params = {"zapikey": self._settings.zapikey.get_secret_value()}
        started = time.perf_counter()

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


def classify_response(status: int, text: str) -> Literal["success", "retry", "reject"]:
    if status in RETRYABLE_STATUSES or status >= 500:
        return "retry"
    if not 200 <= status < 300:
        return "reject"
    return "reject" if has_failure_marker(text) else "success"


def has_failure_marker(text: str) -> bool:
    """True when a 2xx body still says it failed (``Message``/``status``, any case)."""
    lowered = text.lower()
    if not any(marker in lowered for marker in FAILURE_MARKERS):
        return False  # the usual {"Message":"Success"}: no need to parse it
    try:
        document: Any = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return False
    if not isinstance(document, dict):
        return False
    for key, value in document.items():
        if (
            key.lower() in {"message", "status"}
            and isinstance(value, str)
            and value.strip().lower() in FAILURE_MARKERS
        ):
            return True
    return False


# Refusals about us, not about the subscription: never read as "already gone".
NEVER_GONE_STATUSES = frozenset({401, 403})
# Where an error body explains itself; "status" only ever says error/failure.
_EXPLAINING_KEYS = frozenset({"message", "code", "details", "reason", "error", "description"})


def means_already_gone(status: int | None, text: str | None, settings: PlatformSettings) -> bool:
    """True when a refused Cancel says the subscription is not on the platform (any more).

    Only such an answer may let a repeated Cancel count as done: one of
    ``cancel_gone_statuses`` (404, 410), or a 2xx/4xx JSON body whose message, code or details
    hold one of ``cancel_gone_markers``. 401 and 403 speak about our credentials, never about
    the subscription, so they never count, whatever their body says.
    """
    if status is None or status in NEVER_GONE_STATUSES:
        return False
    if status in settings.cancel_gone_statuses:
        return True
    if not 200 <= status < 500 or not text:
        return False
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        return False
    if not isinstance(document, dict):
        return False
    explained = " ".join(
        _strings(value) for key, value in document.items() if key.lower() in _EXPLAINING_KEYS
    )
    said = _normalised(explained)
    return any(_normalised(marker) in said for marker in settings.cancel_gone_markers if marker)


def _strings(value: Any, depth: int = 0) -> str:
    """Every string in a value (a details object may nest), joined; bounded in depth."""
    if isinstance(value, str):
        return value
    if depth >= 3:
        return ""
    if isinstance(value, dict):
        return " ".join(_strings(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return " ".join(_strings(item, depth + 1) for item in value)
    return ""


def _normalised(text: str) -> str:
    """SUBSCRIPTION_NOT_FOUND and 'Subscription not-found' read alike."""
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


def describe_failure(status: int, text: str) -> str:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return f"HTTP {status}"
    if isinstance(document, dict):
        code = document.get("code") or document.get("Message") or document.get("message")
        if code:
            return f"HTTP {status}: {str(code)[:200]}"
    return f"HTTP {status}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
