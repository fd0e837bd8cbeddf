"""What the simulated Developer Console accepts, and how it words each answer
(docs/contracts.md §1).

Pure but for building aiohttp responses: the request checks a real platform would make (mandatory
string fields, digits, frequencies, ``custom_pricing_json`` as an object or a string of one), the
``{code, details, message, status}`` error bodies, the answers to a Cancel of a subscription that
is gone, and errors that echo the request URL. Like the rest of the simulator it never imports
the broker.
"""

from __future__ import annotations

import html
import json
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web

ADD_FIELDS = ("zuid", "no_of_users", "frequency", "subscription_id", "storage_units")
CANCEL_FIELDS = ("zuid", "subscription_id")
FREQUENCIES = ("1", "4")


class InvalidData(Exception):
    """A request the real platform would refuse with 400 INVALID_DATA; args: (message, field)."""


def check_fail_status(status: int) -> None:
    """A scripted answer always carries a JSON body, which bodiless statuses cannot."""
    if not 200 <= status <= 599 or status in (204, 205, 304):
        raise ValueError(f"status {status} cannot carry an error body")


def zoho_error(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The {code, details, message, status} shape other zohoplatform APIs answer errors with."""
    return {"code": code, "status": "error", "message": message, "details": details or {}}


def error_code(status: int) -> str:
    """Zoho-style code for a scripted error status, so clients see a realistic body."""
    codes = {400: "INVALID_DATA", 401: "INVALID_TOKEN", 403: "NO_PERMISSION", 404: "INVALID_URL"}
    codes |= {429: "TOO_MANY_REQUESTS", 503: "SERVICE_UNAVAILABLE"}
    return codes.get(status, "INTERNAL_ERROR" if status >= 500 else f"HTTP_{status}")


def parse_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None: the recorder keeps whatever the platform could read."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def is_digits(value: str) -> bool:
    """ASCII digits only: str.isdigit() would also accept superscripts and other scripts."""
    return value.isascii() and value.isdigit()


def checked_body(method: str, zgid: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """The body of a well-formed call, or InvalidData naming the first field that is wrong."""
    if not is_digits(zgid):
        raise InvalidData("zgid in the path must be digits", "zgid")
    if body is None:
        raise InvalidData("body must be a JSON object", "body")
    for name in CANCEL_FIELDS if method == "DELETE" else ADD_FIELDS:
        value = body.get(name)
        if value is None:
            raise InvalidData(f"{name} is mandatory", name)
        if not isinstance(value, str):
            raise InvalidData(f"{name} must be a JSON string", name)
        if not value:
            raise InvalidData(f"{name} must not be empty", name)
    if not is_digits(body["zuid"]):
        raise InvalidData("zuid must be digits", "zuid")
    if method != "DELETE":
        check_quantities(body)
    check_custom_pricing(body.get("custom_pricing_json"))
    return body


def check_quantities(body: dict[str, Any]) -> None:
    """Add and Modify carry the plan's frequency and counts as strings of numbers."""
    if body["frequency"] not in FREQUENCIES:
        raise InvalidData('frequency must be "1" (monthly) or "4" (yearly)', "frequency")
    if not is_digits(body["no_of_users"]) or int(body["no_of_users"]) < 1:
        raise InvalidData("no_of_users must be a positive integer", "no_of_users")
    if not is_digits(body["storage_units"]):
        raise InvalidData("storage_units must be a non-negative integer", "storage_units")


def check_custom_pricing(value: Any) -> None:
    """The contract is unsure whether it is an object or a string of JSON, so accept both."""
    if value is None or isinstance(value, dict):
        return
    if isinstance(value, str) and isinstance(parse_object(value.encode()), dict):
        return
    raise InvalidData(
        "custom_pricing_json must be a JSON object or a string holding one", "custom_pricing_json"
    )


# How a Cancel of a subscription the org does not hold (any more) is answered; docs/contracts.md §1
# leaves it open: a bare Failure, a 404, a Failure that says why, or a refusal (403).
RepeatedCancel = Literal["failure", "not_found", "failure_gone", "forbidden"]


def gone_answer(mode: RepeatedCancel, subscription_id: str) -> tuple[int, dict[str, Any]]:
    if mode == "not_found":
        message = f"no active subscription {subscription_id} at this org"
        return 404, zoho_error("NOT_FOUND", message)
    if mode == "failure_gone":
        return 200, {"Message": "Failure", "details": "Subscription already cancelled"}
    if mode == "forbidden":
        return 403, zoho_error("NO_PERMISSION", "permission denied")
    return 200, {"Message": "Failure"}


def echoing_answer(
    request: web.Request,
    status: int,
    response: dict[str, Any],
    form: Literal["json", "html"],
    headers: dict[str, str] | None,
) -> web.Response:
    """An error that quotes the request back: raw, percent-encoded and (HTML) entity-escaped."""
    url = str(request.url)
    if form == "json":
        echoed = {**response, "message": f"{response.get('message', 'error')} for {url}"}
        echoed["details"] = {
            **echoed.get("details", {}),
            "request_url": url,
            "zapikey": request.query.get("zapikey", ""),
            "encoded": quote(url, safe=""),
        }
        return web.json_response(echoed, status=status, headers=headers)
    text = (
        f"<html><body><h1>Error {status}</h1><p>Request: {html.escape(url)}</p>"
        f'<a href="{html.escape(url)}">retry</a><!-- {quote(url, safe="")} --></body></html>'
    )
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)
