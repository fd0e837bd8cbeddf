"""Local stand-in for the Developer Console Subscription APIs (contracts.md section 1).

Owns an aiohttp app that answers Add / Modify / Cancel Subscription as the contract describes,
remembers every call and each org's resulting subscription, and plays scripted faults (error
statuses, ``{"Message": "Failure"}``, slowness, dropped connections) so the test-suite and
``broker demo`` can show how the broker copes. Routes under ``/_sim/`` drive it from another
process.

It must never log the zapikey (it rides in the query string, so only the path is logged) and never
import the broker: it is the other side of the wire.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hmac
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .waiting import ChangeWaiters

SUBSCRIPTION_PATH = "/crm/v2/settings/subscription/{zgid}/plan/{planid}"
_ADD_FIELDS = ("zuid", "no_of_users", "frequency", "subscription_id", "storage_units")
_CANCEL_FIELDS = ("zuid", "subscription_id")
_FREQUENCIES = ("1", "4")
# Never the query string: the zapikey rides there.
_LOGGED_FIELDS = ("method", "zgid", "planid", "status", "applied", "aborted")


@dataclass
class RecordedCall:
    method: str
    zgid: str
    planid: str
    body: dict[str, Any] | None
    status: int
    response: dict[str, Any]
    applied: bool
    aborted: bool = False
    received_at: float = 0.0


@dataclass
class OrgSubscription:
    zgid: str
    planid: str
    zuid: str
    subscription_id: str
    no_of_users: str
    frequency: str
    storage_units: str
    custom_pricing_json: Any
    active: bool


@dataclass
class _Faults:
    """What the next calls will suffer; replaced wholesale by reset()."""

    fail_count: int = 0
    fail_status: int = 503
    fail_retry_after: float | None = None
    fail_body: dict[str, Any] | None = None
    failure_answers: int = 0
    delay: float = 0.0
    delay_methods: frozenset[str] | None = None  # None: every method is slowed
    down: bool = False
    # Error answers echo the request URL (zapikey included), as some web stacks do.
    echo_url: Literal["json", "html"] | None = None


class _InvalidData(Exception):
    """A request the real platform would refuse with 400 INVALID_DATA; args: (message, field)."""


class _FaultsRequest(BaseModel):
    """Body of POST /_sim/faults; strict so a typo or a string count is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", strict=True)
    fail_next: int | None = Field(default=None, ge=0)
    status: int = 503
    retry_after: float | None = Field(default=None, ge=0)
    answer_failure_next: int | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0)
    down: bool | None = None

    @field_validator("status")
    @classmethod
    def _status_can_carry_a_body(cls, status: int) -> int:
        _check_fail_status(status)
        return status


def _check_fail_status(status: int) -> None:
    """A scripted answer always carries a JSON body, which bodiless statuses cannot."""
    if not 200 <= status <= 599 or status in (204, 205, 304):
        raise ValueError(f"status {status} cannot carry an error body")


def _zoho_error(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The {code, details, message, status} shape other zohoplatform APIs answer errors with."""
    return {"code": code, "status": "error", "message": message, "details": details or {}}


def _error_code(status: int) -> str:
    """Zoho-style code for a scripted error status, so clients see a realistic body."""
    codes = {400: "INVALID_DATA", 401: "INVALID_TOKEN", 403: "NO_PERMISSION", 404: "INVALID_URL"}
    codes |= {429: "TOO_MANY_REQUESTS", 503: "SERVICE_UNAVAILABLE"}
    return codes.get(status, "INTERNAL_ERROR" if status >= 500 else f"HTTP_{status}")


def _parse_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None: the recorder keeps whatever the platform could read."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _is_digits(value: str) -> bool:
    """ASCII digits only: str.isdigit() would also accept superscripts and other scripts."""
    return value.isascii() and value.isdigit()


def _checked_body(call: RecordedCall) -> dict[str, Any]:
    """The body of a well-formed call, or _InvalidData naming the first field that is wrong."""
    if not _is_digits(call.zgid):
        raise _InvalidData("zgid in the path must be digits", "zgid")
    body = call.body
    if body is None:
        raise _InvalidData("body must be a JSON object", "body")
    for name in _CANCEL_FIELDS if call.method == "DELETE" else _ADD_FIELDS:
        value = body.get(name)
        if value is None:
            raise _InvalidData(f"{name} is mandatory", name)
        if not isinstance(value, str):
            raise _InvalidData(f"{name} must be a JSON string", name)
        if not value:
            raise _InvalidData(f"{name} must not be empty", name)
    if not _is_digits(body["zuid"]):
        raise _InvalidData("zuid must be digits", "zuid")
    if call.method != "DELETE":
        _check_quantities(body)
    _check_custom_pricing(body.get("custom_pricing_json"))
    return body


def _check_quantities(body: dict[str, Any]) -> None:
    """Add and Modify carry the plan's frequency and counts as strings of numbers."""
    if body["frequency"] not in _FREQUENCIES:
        raise _InvalidData('frequency must be "1" (monthly) or "4" (yearly)', "frequency")
    if not _is_digits(body["no_of_users"]) or int(body["no_of_users"]) < 1:
        raise _InvalidData("no_of_users must be a positive integer", "no_of_users")
    if not _is_digits(body["storage_units"]):
        raise _InvalidData("storage_units must be a non-negative integer", "storage_units")


def _check_custom_pricing(value: Any) -> None:
    """The contract is unsure whether it is an object or a string of JSON, so accept both."""
    if value is None or isinstance(value, dict):
        return
    if isinstance(value, str) and isinstance(_parse_object(value.encode()), dict):
        return
    raise _InvalidData(
        "custom_pricing_json must be a JSON object or a string holding one", "custom_pricing_json"
    )


# How a Cancel of a subscription the org does not hold (any more) is answered; contracts.md §1
# leaves it open: a bare Failure, a 404, a Failure that says why, or a refusal (403).
RepeatedCancel = Literal["failure", "not_found", "failure_gone", "forbidden"]


def _gone_answer(mode: RepeatedCancel, subscription_id: str) -> tuple[int, dict[str, Any]]:
    if mode == "not_found":
        message = f"no active subscription {subscription_id} at this org"
        return 404, _zoho_error("NOT_FOUND", message)
    if mode == "failure_gone":
        return 200, {"Message": "Failure", "details": "Subscription already cancelled"}
    if mode == "forbidden":
        return 403, _zoho_error("NO_PERMISSION", "permission denied")
    return 200, {"Message": "Failure"}


class PlatformSimulator:
    """The Developer Console side of the wire, with a recorder and a fault script."""

    def __init__(
        self,
        zapikey: str,
        *,
        duplicate_add: Literal["accept", "fail"] = "accept",
        repeated_cancel: RepeatedCancel = "failure",
    ) -> None:
        self._zapikey = zapikey
        self._duplicate_add = duplicate_add
        self._repeated_cancel = repeated_cancel
        self._faults = _Faults()
        self._waiters = ChangeWaiters()
        self._log = structlog.get_logger("platform_simulator")
        self.calls: list[RecordedCall] = []
        self.subscriptions: dict[str, OrgSubscription] = {}

    @property
    def refuses_duplicate_add(self) -> bool:
        return self._duplicate_add == "fail"

    @property
    def applied(self) -> list[RecordedCall]:
        return [call for call in self.calls if call.applied]

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """The next `count` calls (replacing any earlier script; 0 clears it) answer `status`."""
        if count < 0:
            raise ValueError("count must not be negative")
        _check_fail_status(status)
        self._faults.fail_count = count
        self._faults.fail_status = status
        self._faults.fail_retry_after = retry_after
        self._faults.fail_body = body

    def answer_failure_next(self, count: int) -> None:
        """The next `count` calls answer 200 {"Message": "Failure"} (replacing, 0 clears)."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._faults.failure_answers = count

    def echo_request_url(self, form: Literal["json", "html"] | None) -> None:
        """Error answers repeat the full request URL, zapikey and all (None stops it)."""
        self._faults.echo_url = form

    def set_delay(self, seconds: float, *, methods: set[str] | None = None) -> None:
        """Hold each call ``seconds`` before applying it; only ``methods`` when given."""
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._faults.delay = seconds
        self._faults.delay_methods = frozenset(methods) if methods is not None else None

    def go_down(self) -> None:
        self._faults.down = True

    def come_up(self) -> None:
        self._faults.down = False

    def reset(self) -> None:
        self.calls.clear()
        self.subscriptions.clear()
        self._faults = _Faults()
        self._waiters.notify()

    async def wait_until(
        self,
        predicate: Callable[[PlatformSimulator], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline is the point of this test helper
    ) -> None:
        """Wait for predicate(self), re-checked whenever a call is recorded or state is reset."""
        await self._waiters.wait_until(lambda: predicate(self), timeout, seen=self._seen)

    def _seen(self) -> str:
        """The calls recorded so far, for a wait that timed out."""
        return "calls seen: " + ("; ".join(_describe(call) for call in self.calls) or "none")

    def app(self) -> web.Application:
        app = web.Application()
        for method in ("POST", "PUT", "DELETE"):
            app.router.add_route(method, SUBSCRIPTION_PATH, self._subscription)
        app.router.add_get("/_sim/calls", self._get_calls)
        app.router.add_get("/_sim/subscriptions", self._get_subscriptions)
        app.router.add_post("/_sim/faults", self._post_faults)
        app.router.add_post("/_sim/reset", self._post_reset)
        return app

    async def _subscription(self, request: web.Request) -> web.StreamResponse:
        received_at, info = time.monotonic(), request.match_info
        body = _parse_object(await request.read())
        call = RecordedCall(request.method, info["zgid"], info["planid"], body, 0, {}, False)
        call.received_at = received_at
        if self._faults.down:  # drop the connection unanswered; the record keeps status 0
            self._record(request, call)
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # written to a closed transport: aiohttp discards it
        scripted = self._take_scripted_answer()
        if scripted is not None:
            status, response, headers = scripted
            return self._answer(request, call, status, response, headers=headers)
        given = request.query.get("zapikey", "").encode()  # bytes: str must be ASCII
        if not hmac.compare_digest(given, self._zapikey.encode()):
            error = _zoho_error("INVALID_TOKEN", "invalid or missing zapikey")
            return self._answer(request, call, 401, error)
        try:
            checked = _checked_body(call)
        except _InvalidData as exc:
            message, field = exc.args
            error = _zoho_error("INVALID_DATA", message, {"field": field})
            return self._answer(request, call, 400, error)
        if self._faults.delay > 0 and self._slowed(call.method):
            try:
                await asyncio.sleep(self._faults.delay)
            except asyncio.CancelledError:
                # aiohttp cancels the handler when the client leaves (test servers do).
                self._abort(request, call)
                raise
            if request.transport is None or request.transport.is_closing():
                self._abort(request, call)
                return web.Response()  # nobody is listening; aiohttp drops the write
        if call.method == "DELETE" and not self._holds(call.zgid, checked["subscription_id"]):
            status, gone = _gone_answer(self._repeated_cancel, checked["subscription_id"])
            return self._answer(request, call, status, gone)
        applied = self._apply(call.method, call.zgid, call.planid, checked)
        answer = {"Message": "Success" if applied else "Failure"}
        return self._answer(request, call, 200, answer, applied=applied)

    def _slowed(self, method: str) -> bool:
        methods = self._faults.delay_methods
        return methods is None or method in methods

    def _take_scripted_answer(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Consume one scripted fault, fail_next before answer_failure_next."""
        faults = self._faults
        if faults.fail_count > 0:
            faults.fail_count -= 1
            if faults.fail_body is not None:
                body = dict(faults.fail_body)
            else:
                body = _zoho_error(_error_code(faults.fail_status), "simulated platform failure")
            headers = {}
            if faults.fail_retry_after is not None:
                # Whole seconds print as "2"; fractions stay so tests need not wait long.
                headers["Retry-After"] = f"{faults.fail_retry_after:g}"
            return faults.fail_status, body, headers
        if faults.failure_answers > 0:
            faults.failure_answers -= 1
            return 200, {"Message": "Failure"}, {}
        return None

    def _holds(self, zgid: str, subscription_id: str) -> bool:
        current = self.subscriptions.get(zgid)
        return current is not None and current.active and current.subscription_id == subscription_id

    def _apply(self, method: str, zgid: str, planid: str, body: dict[str, Any]) -> bool:
        """Change the org's state as the platform would; False means it answers Failure."""
        current = self.subscriptions.get(zgid)
        if current is not None and not (
            current.active and current.subscription_id == body["subscription_id"]
        ):
            current = None
        if method == "POST":
            if current is not None and self._duplicate_add == "fail":
                return False
            self.subscriptions[zgid] = _new_subscription(zgid, planid, body)
            return True
        if current is None:
            return False
        if method == "PUT":  # a Modify keeps the zuid that bought the subscription
            modified = {**body, "zuid": current.zuid}
            self.subscriptions[zgid] = _new_subscription(zgid, planid, modified)
            return True
        if current.planid != planid:
            return False
        current.active = False
        return True

    def _answer(
        self,
        request: web.Request,
        call: RecordedCall,
        status: int,
        response: dict[str, Any],
        *,
        applied: bool = False,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        call.status, call.response, call.applied = status, response, applied
        self._record(request, call)
        echo = self._faults.echo_url
        if echo is not None and status >= 400:
            return _echoing_answer(request, status, response, echo, headers)
        return web.json_response(response, status=status, headers=headers)

    def _abort(self, request: web.Request, call: RecordedCall) -> None:
        """The client left before we applied: the platform never commits such a call."""
        call.aborted = True
        self._record(request, call)

    def _record(self, request: web.Request, call: RecordedCall) -> None:
        """Keep arrival order even when a slow call ends after a later one; wake waiters."""
        bisect.insort(self.calls, call, key=lambda recorded: recorded.received_at)
        summary = {name: getattr(call, name) for name in _LOGGED_FIELDS}
        self._log.info("platform_call", path=request.path, **summary)
        self._waiters.notify()

    async def _get_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": [dataclasses.asdict(call) for call in self.calls]})

    async def _get_subscriptions(self, request: web.Request) -> web.Response:
        subscriptions = {zgid: dataclasses.asdict(s) for zgid, s in self.subscriptions.items()}
        return web.json_response({"subscriptions": subscriptions})

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            wanted = _FaultsRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
                for error in exc.errors()
            )
            return web.json_response({"ok": False, "error": problems}, status=400)
        given = wanted.model_fields_set
        if wanted.fail_next is None and given & {"status", "retry_after"}:
            error = "status and retry_after only apply together with fail_next"
            return web.json_response({"ok": False, "error": error}, status=400)
        if wanted.fail_next is not None:
            self.fail_next(wanted.fail_next, wanted.status, retry_after=wanted.retry_after)
        if wanted.answer_failure_next is not None:
            self.answer_failure_next(wanted.answer_failure_next)
        if wanted.delay is not None:
            self.set_delay(wanted.delay)
        if wanted.down is not None:
            self._faults.down = wanted.down
        return web.json_response({"ok": True})

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


def _echoing_answer(
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


def _new_subscription(zgid: str, planid: str, body: dict[str, Any]) -> OrgSubscription:
    """An active subscription from a checked Add or Modify body."""
    pricing = body.get("custom_pricing_json")
    fields = {name: body[name] for name in _ADD_FIELDS}
    return OrgSubscription(zgid, planid, custom_pricing_json=pricing, active=True, **fields)


def _describe(call: RecordedCall) -> str:
    """One call in a TimeoutError message: enough to see what did arrive."""
    outcome = "aborted" if call.aborted else "applied" if call.applied else "not applied"
    return f"{call.method} {call.zgid}/plan/{call.planid} -> {call.status} {outcome}"
