"""HTTP edge for billing webhooks: authenticate, bound, validate, commit durably, acknowledge.

The order matters. Nothing is read or written for a caller without the zapikey; nothing is
acknowledged before it is committed; the platform call happens later, in the delivery worker.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from broker.core.billing_events import check_not_from_the_future, decode_json
from broker.core.workflow_payload import read_webhook
from broker.delivery.product_learning import learn_products, needs_product
from broker.errors import InvalidPayload, PayloadTooLarge, UnsupportedMediaType
from broker.store.pipeline import ingest_webhook
from broker.web.appkeys import (
    billing_client_key,
    clock_key,
    metrics_key,
    request_id_key,
    settings_key,
    store_key,
    worker_key,
)
from broker.web.webhook_auth import SIGNATURE_HEADER, check_signature, check_zapikey

JSON_TYPES = frozenset({"application/json", "text/plain", "application/octet-stream", ""})
FORM_TYPE = "application/x-www-form-urlencoded"


async def receive_billing_webhook(request: web.Request) -> web.Response:
    app = request.app
    settings = app[settings_key]
    check_zapikey(request.headers.get("zapikey"), settings.webhook_keys())
    raw = await read_bounded(request, settings.server.max_body_bytes)

    content_type = request.content_type if request.headers.get("Content-Type") else ""
    form_pairs = _form_pairs(raw) if content_type == FORM_TYPE else []
    secret = settings.webhooks.signing_secret
    if secret is not None:
        check_signature(
            request.headers.get(SIGNATURE_HEADER),
            secret=secret.get_secret_value(),
            encoding=settings.webhooks.signature_encoding,
            pairs=[*request.query.items(), *form_pairs],
            raw_body=b"" if form_pairs else raw,
        )

    event = read_webhook(_document(raw, content_type, form_pairs))
    now = app[clock_key]()
    check_not_from_the_future(event, now=now, tolerance=settings.webhooks.future_tolerance_seconds)
    billing = app.get(billing_client_key)
    if billing is not None and needs_product(event.data.subscription, settings):
        # Before the write: learning reads billing, which must never hold the writer.
        await learn_products(billing, app[store_key], settings=settings, now=now)
    result = await app[store_key].write(
        partial(
            ingest_webhook,
            event=event,
            raw_body=raw,
            content_type=content_type,
            request_id=request.get(request_id_key, ""),
            settings=settings,
            now=now,
        )
    )
    if result.queued:
        app[worker_key].wake()
    app[metrics_key].webhooks.labels(result.outcome).inc()
    if result.money_kind is not None:
        app[metrics_key].money_events.labels(result.money_kind, result.money_verdict).inc()
    # These ride on the request's own log line (one line per request).
    structlog.contextvars.bind_contextvars(
        event_id=event.event_id,
        event_type=event.event_type,
        subscription_id=result.subscription_id,
        outcome=result.outcome,
        reason=result.reason,
        delivery_id=result.delivery_id,
        warning=result.warning,
    )
    body: dict[str, object] = {
        "status": "duplicate" if result.outcome == "duplicate" else "accepted",
        "event_id": event.event_id,
        "outcome": result.outcome,
    }
    if result.reason:
        body["reason"] = result.reason
    if result.warning:
        body["warning"] = result.warning
    return web.json_response(body)


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """Read the body, refusing it as soon as it passes ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(
            f"the body is {declared} bytes; the limit is {limit}", hint="send one event per call"
        )
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the body passes the {limit}-byte limit", hint="send one event per call"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _form_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The form's fields; a percent-escape that is not UTF-8 (a lone surrogate, say) refuses
    the form rather than turning into U+FFFD and changing what billing sent."""
    try:
        return parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(raw),
            errors="strict",
        )
    except UnicodeDecodeError:
        raise InvalidPayload(
            "the form-encoded body is not valid UTF-8 (raw or percent-encoded)",
            hint="in Zoho Billing, set the webhook's payload to the default JSON",
        ) from None
    except ValueError:
        raise InvalidPayload("the form-encoded body cannot be decoded") from None


def _document(raw: bytes, content_type: str, form_pairs: list[tuple[str, str]]) -> object:
    """The decoded body, not yet read as an event (``read_webhook`` does that)."""
    if content_type in JSON_TYPES:
        if not raw.strip():
            raise InvalidPayload("the body is empty", hint="send the event as a JSON object")
        return decode_json(raw)
    if content_type == FORM_TYPE:
        # A form whose only field holds the JSON event is readable; anything else is not.
        if len(form_pairs) == 1 and form_pairs[0][1].lstrip().startswith("{"):
            return decode_json(form_pairs[0][1].encode())
        raise UnsupportedMediaType(
            "form-encoded webhooks are not supported unless a single field carries the JSON event",
            hint="in Zoho Billing, set the webhook's payload to the default JSON",
        )
    raise UnsupportedMediaType(
        f"content type {content_type!r} is not supported", hint="send application/json"
    )
