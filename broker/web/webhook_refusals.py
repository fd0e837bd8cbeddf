"""Counting the webhooks the broker refuses, by a bounded reason, for monitoring.

A spike of one reason says what broke: ``zapikey`` after a key rotation, ``signature`` after a
secret change, ``unreadable`` after a payload change in Zoho, ``store_unavailable`` when the disk is
in trouble. ``disconnected`` and ``body_timeout`` are the network's or the client's doing (a
hang-up, a stalled body) and are kept apart from ``internal``, which is only ever a bug of ours.
The middleware sits inside ``error_answers`` so it sees the error before it becomes an answer;
the answer itself is unchanged.
"""

from __future__ import annotations

from enum import StrEnum

from aiohttp import web
from aiohttp.typedefs import Handler

from broker.errors import (
    BodyTimeout,
    BrokerError,
    ClientGone,
    PayloadTooLarge,
    SignatureRefused,
    StoreError,
    Unauthenticated,
    UnsupportedMediaType,
)
from broker.web.appkeys import metrics_key, refusals_key

WEBHOOK_PATH = "/webhooks/billing"


class WebhookRefusal(StrEnum):
    ZAPIKEY = "zapikey"  # 401: the zapikey header is missing or wrong
    SIGNATURE = "signature"  # 401: the signature is missing or wrong
    UNREADABLE = "unreadable"  # 400: not JSON, not an event, a bad id, dated in the future
    TOO_LARGE = "too_large"  # 413
    MEDIA_TYPE = "media_type"  # 415
    METHOD = "method"  # 405: not a POST
    STORE_UNAVAILABLE = "store_unavailable"  # 503: the database could not take it; Zoho retries
    BODY_TIMEOUT = "body_timeout"  # 408: the body stalled past server.body_timeout_seconds
    DISCONNECTED = "disconnected"  # 499: the client hung up before its body arrived
    INTERNAL = "internal"  # 500: a bug of ours, in the log as http.unhandled


def refusal_reason(error: BaseException) -> WebhookRefusal:
    if isinstance(error, SignatureRefused):
        return WebhookRefusal.SIGNATURE
    if isinstance(error, Unauthenticated):
        return WebhookRefusal.ZAPIKEY
    if isinstance(error, PayloadTooLarge | web.HTTPRequestEntityTooLarge):
        return WebhookRefusal.TOO_LARGE
    if isinstance(error, UnsupportedMediaType):
        return WebhookRefusal.MEDIA_TYPE
    if isinstance(error, web.HTTPMethodNotAllowed):
        return WebhookRefusal.METHOD
    if isinstance(error, StoreError):
        return WebhookRefusal.STORE_UNAVAILABLE
    if isinstance(error, BodyTimeout):
        return WebhookRefusal.BODY_TIMEOUT
    if isinstance(error, ClientGone):
        return WebhookRefusal.DISCONNECTED
    if isinstance(error, BrokerError | web.HTTPException) and 400 <= error.status < 500:
        return WebhookRefusal.UNREADABLE
    return WebhookRefusal.INTERNAL


@web.middleware
async def count_webhook_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != WEBHOOK_PATH:
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as http_error:
        if http_error.status >= 400:
            _count(request.app, refusal_reason(http_error))
        raise
    except Exception as error:
        _count(request.app, refusal_reason(error))
        raise


def _count(app: web.Application, reason: WebhookRefusal) -> None:
    """The metric, and the console's per-day counts (in memory; a timer writes them a minute
    later, never a write per request)."""
    app[metrics_key].webhooks_refused.labels(reason).inc()
    if refusals_key in app:
        app[refusals_key].note(reason)
