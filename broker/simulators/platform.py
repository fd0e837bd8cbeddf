"""Local stand-in for the Developer Console Subscription APIs (docs/contracts.md section 1).

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiohttp import web

from .platform_checks import (
    ADD_FIELDS,
    InvalidData,
    RepeatedCancel,
    checked_body,
    echoing_answer,
    gone_answer,
    parse_object,
    zoho_error,
)
from .platform_faults import FaultScript, read_faults_request
from .waiting import ChangeWaiters

SUBSCRIPTION_PATH = "/crm/v2/settings/subscription/{zgid}/plan/{planid}"
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
        self._faults = FaultScript()
        self._waiters = ChangeWaiters()
        self._log = structlog.get_logger("platform_simulator")
        self.calls: list[RecordedCall] = []
        self.subscriptions: dict[str, OrgSubscription] = {}
        self._released = asyncio.Event()
        self.hanging = 0  # calls held unanswered right now (see ``hang``)

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
        self._faults.fail_next(count, status, retry_after=retry_after, body=body)

    def answer_failure_next(self, count: int) -> None:
        """The next `count` calls answer 200 {"Message": "Failure"} (replacing, 0 clears)."""
        self._faults.answer_failure_next(count)

    def echo_request_url(self, form: Literal["json", "html"] | None) -> None:
        """Error answers repeat the full request URL, zapikey and all (None stops it)."""
        self._faults.echo_url = form

    def set_delay(self, seconds: float, *, methods: set[str] | None = None) -> None:
        """Hold each call ``seconds`` before applying it; only ``methods`` when given."""
        self._faults.set_delay(seconds, methods=methods)

    def hang(self, zgids: set[str] | None = None) -> None:
        """Hold calls to these orgs (every org when None) unanswered until ``release``, as a
        platform that accepted the connection and went quiet does."""
        self._faults.hung_orgs = frozenset({"*"} if zgids is None else zgids)
        self._released = asyncio.Event()

    def release(self) -> None:
        """Let every held call go on (and be applied); later calls are no longer held."""
        self._faults.hung_orgs = frozenset()
        self._released.set()

    def go_down(self) -> None:
        self._faults.down = True

    def come_up(self) -> None:
        self._faults.down = False

    def reset(self) -> None:
        self.release()
        self.calls.clear()
        self.subscriptions.clear()
        self._faults = FaultScript()
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
        body = parse_object(await request.read())
        call = RecordedCall(request.method, info["zgid"], info["planid"], body, 0, {}, False)
        call.received_at = received_at
        if self._faults.down:  # drop the connection unanswered; the record keeps status 0
            self._record(request, call)
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # written to a closed transport: aiohttp discards it
        scripted = self._faults.take_answer()
        if scripted is not None:
            status, response, headers = scripted
            return self._answer(request, call, status, response, headers=headers)
        given = request.query.get("zapikey", "").encode()  # bytes: str must be ASCII
        if not hmac.compare_digest(given, self._zapikey.encode()):
            error = zoho_error("INVALID_TOKEN", "invalid or missing zapikey")
            return self._answer(request, call, 401, error)
        try:
            checked = checked_body(call.method, call.zgid, call.body)
        except InvalidData as exc:
            message, field = exc.args
            error = zoho_error("INVALID_DATA", message, {"field": field})
            return self._answer(request, call, 400, error)
        if self._faults.hangs(call.zgid):
            released = self._released
            self.hanging += 1
            self._waiters.notify()
            try:
                await released.wait()
            except asyncio.CancelledError:
                self._abort(request, call)
                raise
            finally:
                self.hanging -= 1
            if request.transport is None or request.transport.is_closing():
                self._abort(request, call)
                return web.Response()
        if self._faults.slows(call.method):
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
            status, gone = gone_answer(self._repeated_cancel, checked["subscription_id"])
            return self._answer(request, call, status, gone)
        applied = self._apply(call.method, call.zgid, call.planid, checked)
        answer = {"Message": "Success" if applied else "Failure"}
        return self._answer(request, call, 200, answer, applied=applied)

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
            return echoing_answer(request, status, response, echo, headers)
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
        wanted = read_faults_request(await request.read())
        if isinstance(wanted, str):
            return web.json_response({"ok": False, "error": wanted}, status=400)
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


def _new_subscription(zgid: str, planid: str, body: dict[str, Any]) -> OrgSubscription:
    """An active subscription from a checked Add or Modify body."""
    pricing = body.get("custom_pricing_json")
    fields = {name: body[name] for name in ADD_FIELDS}
    return OrgSubscription(zgid, planid, custom_pricing_json=pricing, active=True, **fields)


def _describe(call: RecordedCall) -> str:
    """One call in a TimeoutError message: enough to see what did arrive."""
    outcome = "aborted" if call.aborted else "applied" if call.applied else "not applied"
    return f"{call.method} {call.zgid}/plan/{call.planid} -> {call.status} {outcome}"
