"""What a Developer Console answer means, decided without I/O.

``CallResult`` is one call's outcome as the delivery worker and the outbox record it;
``classify_response`` sorts an answer into ``success``, ``retry`` or ``reject``;
``means_already_gone`` says whether a refused Cancel says the subscription is already gone.
``broker.clients.platform`` makes the call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

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
