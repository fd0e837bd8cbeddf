"""Request context, the one place errors become answers, and security headers.

Machine routes answer errors as JSON, human routes (the Manage Subscription page) as an HTML page.
An unexpected exception becomes a generic 500 carrying only the request id; its details go to the
log, never to the client.
"""

from __future__ import annotations

import math
import random
import re
import time

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from broker.core.billing_budget import CallPriority, spending_as
from broker.errors import BrokerError
from broker.web.appkeys import csp_key, request_id_key

log = structlog.get_logger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HUMAN_PREFIXES = ("/manage", "/ops")


def content_security_policy(form_targets: list[str]) -> str:
    """No scripts at all; forms may post here, and be redirected to the billing checkout."""
    form_action = " ".join(["'self'", *form_targets])
    return (
        f"default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, bind it to every log line, and log one line per request."""
    incoming = request.headers.get("X-Request-ID", "")
    # Not a secret, so no system call for randomness on every request.
    request_id = incoming if _REQUEST_ID.match(incoming) else f"{random.getrandbits(64):016x}"
    request[request_id_key] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    except web.HTTPException as answer:  # a raised redirect is an answer, not a failure
        status = answer.status
        raise
    finally:
        # The path only: query strings carry personal data (landing) and must not be logged.
        log.info(
            "http.request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.clear_contextvars()


@web.middleware
async def error_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BrokerError as error:
        # A client that hung up or stalled is its own doing: worth a line, not a warning.
        emit = log.info if error.quiet else log.warning
        emit(
            "http.refused",
            status=error.status,
            error=error.code,
            message=error.message,
            cause=type(error.__cause__).__name__ if error.__cause__ else None,
        )
        retry = {"Retry-After": f"{math.ceil(error.retry_after)}"} if error.retry_after else {}
        answer = render_error(request, error, headers=retry)
        if error.closes_connection:
            answer.force_close()
        return answer
    except web.HTTPException as http_error:
        if http_error.status < 400:
            raise
        converted = BrokerError(http_error.reason)
        converted.status = http_error.status
        converted.code = _HTTP_CODES.get(http_error.status, "http_error")
        return render_error(request, converted, headers=_allow_header(http_error))
    except Exception:
        log.exception("http.unhandled")
        return render_error(
            request,
            BrokerError("something went wrong on our side; it has been logged, try again later"),
        )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", request.app[csp_key])
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def render_error(
    request: web.Request, error: BrokerError, headers: dict[str, str] | None = None
) -> web.Response:
    body = error.as_dict()
    body["request_id"] = request.get(request_id_key, "")
    if request.path.startswith(HUMAN_PREFIXES):
        context: dict[str, object] = {"error": body, "status": error.status}
        response = aiohttp_jinja2.render_template(
            "error.html", request, context, status=error.status
        )
    else:
        response = web.json_response(body, status=error.status)
    response.headers.update(headers or {})
    return response


def _allow_header(error: web.HTTPException) -> dict[str, str]:
    allow = error.headers.get("Allow")
    return {"Allow": allow} if allow else {}


# Requests whose billing calls are a customer's action (checkout, change, cancel, reactivate,
# pause, resume, and coming back from a checkout): they may spend the daily budget to its limit.
CUSTOMER_RETURN_PATHS = frozenset({"/manage/return"})


@web.middleware
async def billing_priority(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Say who this request's billing calls are for (``core.billing_budget``): a form posted
    on the page or the console is an action, as is the return from a checkout; any other
    request only reads."""
    acting = (
        request.method == "POST" and request.path.startswith(("/manage", "/ops"))
    ) or request.path in CUSTOMER_RETURN_PATHS
    if not acting:
        return await handler(request)
    with spending_as(CallPriority.CUSTOMER):
        return await handler(request)
