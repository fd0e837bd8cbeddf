"""What a Developer Console answer means, decided without I/O.

``CallResult`` is one call's outcome as the delivery worker and the outbox record it;
``classify_response`` sorts an answer into ``success``, ``retry`` or ``reject``;
``means_already_gone`` says whether a refused Cancel says the subscription is already gone.
``broker.clients.platform`` makes the call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from broker.config import PlatformSettings

FAILURE_MARKERS = frozenset({"failure", "failed", "error"})
RETRYABLE_STATUSES = frozenset({408, 425, 429})


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
        document: object = json.loads(text) if text.strip() else {}
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
    *is* one of ``cancel_gone_markers`` (the whole string, case, ``_``/``-`` and a final full
    stop aside). A marker inside a longer sentence does not count: "Invalid zapikey: no
    subscription for this key" speaks about our key, not the subscription. 401 and 403 speak
    about our credentials, never about the subscription, so they never count, whatever their
    body says.
    """
    if status is None or status in NEVER_GONE_STATUSES:
        return False
    if status in settings.cancel_gone_statuses:
        return True
    if not 200 <= status < 500 or not text:
        return False
    try:
        document: object = json.loads(text)
    except json.JSONDecodeError:
        return False
    if not isinstance(document, dict):
        return False
    markers = {_normalised(marker) for marker in settings.cancel_gone_markers}
    markers.discard("")
    said = [
        _normalised(text)
        for key, value in document.items()
        if key.lower() in _EXPLAINING_KEYS
        for text in _strings(value)
    ]
    return any(text in markers for text in said)


def _strings(value: object, depth: int = 0) -> list[str]:
    """Every string in a value (a details object may nest), each apart; bounded in depth."""
    if isinstance(value, str):
        return [value]
    if depth >= 3:
        return []
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item, depth + 1)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item, depth + 1)]
    return []


def _normalised(text: str) -> str:
    """SUBSCRIPTION_NOT_FOUND and ' Subscription not-found. ' read alike."""
    words = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    return words.removesuffix(".").rstrip()


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
