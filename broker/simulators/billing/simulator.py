"""``BillingSimulator``: the Zoho Billing side of the wire as one aiohttp app, with its state,
its webhooks to the broker, a calendar tests can move, and a fault script.

Routes: the token endpoint (``/oauth/v2/token``), the REST API (``/billing/v1/...``), the hosted
checkout pages (``/hostedpages/{id}/...``) and controls under ``/_sim/``. Faults (down, slow,
scripted errors) hit the token endpoint and the API only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.simulators.waiting import ChangeWaiters

from .api import API_PREFIX, ORG_HEADER, TOKEN_PATH, BillingApi, Handler
from .catalog import Catalog, load_catalog
from .checkout import Checkout
from .errors import TOO_MANY_REQUESTS, ApiError
from .inputs import CustomerInput, CustomFieldInput
from .lifecycle import BillingState
from .oauth import TokenIssuer
from .records import Customer, Event, HostedPage, Subscription
from .webhooks import WebhookDelivery, WebhookSender

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ApiCall:
    """One request that reached the API (or the token endpoint), as Zoho counts it against
    the organisation's per-minute quota."""

    method: str
    path: str
    organization_id: str


@dataclass
class _Faults:
    fail_count: int = 0
    fail_status: int = 503
    fail_retry_after: float | None = None
    delay: float = 0.0
    down: bool = False


class _FaultsRequest(BaseModel):
    """Body of POST /_sim/faults; strict, so a typo is an error rather than a no-op."""

    model_config = ConfigDict(extra="forbid", strict=True)
    fail_next: int | None = Field(default=None, ge=0)
    status: int = Field(503, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0)
    down: bool | None = None


class _WebhooksRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    hold: bool | None = None
    drop_next: int | None = Field(default=None, ge=0)


class _TodayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date = Field(alias="date")


def _scripted_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {"code": TOO_MANY_REQUESTS, "message": "Too many requests"}
    return {"code": status, "message": "Simulated Zoho Billing failure"}


class BillingSimulator:
    def __init__(
        self,
        *,
        app_domain: str,
        organization_id: str = "10234695",
        client_id: str = "1000.SIMCLIENT",
        client_secret: str,
        refresh_token: str,
        webhook_url: str | None = None,
        webhook_zapikey: str | None = None,
        signing_secret: str | None = None,
        catalog_file: Path | None = None,
        today: date | None = None,
        hosted_page_ttl_seconds: float = 3600.0,
        access_token_ttl_seconds: int = 3600,
        customer_fields: Collection[str] | None = None,
    ) -> None:
        """``customer_fields``: the customer custom fields the organisation defined, e.g.
        ``("zuid",)`` as the vendor's documented setup makes it; None accepts any field."""
        self.organization_id = organization_id
        self._log = structlog.get_logger("billing_simulator")
        self._faults = _Faults()
        self.abandoned_requests = 0
        self.api_calls: list[ApiCall] = []
        self._waiters = ChangeWaiters()
        self._tokens = TokenIssuer(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            ttl_seconds=access_token_ttl_seconds,
        )
        self._webhooks = WebhookSender(
            webhook_url,
            zapikey=webhook_zapikey,
            signing_secret=signing_secret,
            on_change=self._waiters.notify,
        )
        self.state = BillingState(
            load_catalog(app_domain, catalog_file),
            today or date.today(),
            hosted_page_ttl=hosted_page_ttl_seconds,
            on_event=self._on_event,
            customer_fields=customer_fields,
        )

    # -- what tests read ---------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self.state.catalog

    @property
    def customers(self) -> dict[str, Customer]:
        return self.state.customers

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self.state.subscriptions

    @property
    def hosted_pages(self) -> dict[str, HostedPage]:
        return self.state.hosted_pages

    @property
    def events(self) -> list[Event]:
        return self.state.events

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        return list(self._webhooks.deliveries.values())

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[ApiCall]:
        """API calls received so far (token requests excluded), optionally one method and a
        path under ``path_prefix`` (relative to ``/billing/v1``)."""
        prefix = API_PREFIX + path_prefix
        return [
            call
            for call in self.api_calls
            if call.path.startswith(prefix) and method in (None, call.method)
        ]

    @property
    def token_requests(self) -> int:
        return self._tokens.requests

    @property
    def today(self) -> date:
        return self.state.calendar.today

    # -- what tests do -----------------------------------------------------------------------

    def set_today(self, day: date) -> None:
        """Move the calendar; renewals, trial ends and scheduled cancellations fall due."""
        self.state.set_today(day)
        self._waiters.notify()

    def subscribe(
        self,
        plan_code: str,
        *,
        quantity: int = 1,
        addons: dict[str, int] | None = None,
        customer_id: str | None = None,
        display_name: str = "Example Org",
        email: str = "owner@example.com",
        zuid: str | None = None,
        zgid: str | None = None,
    ) -> Subscription:
        """A subscription as if bought through a checkout: webhooks and all, no browser."""
        fields = [
            CustomFieldInput(label=label, value=value)
            for label, value in (("zuid", zuid), ("zgid", zgid))
            if value is not None
        ]
        customer = CustomerInput(display_name=display_name, email=email, custom_fields=fields)
        return self.state.subscribe(
            plan_code, quantity=quantity, addons=addons, customer_id=customer_id, customer=customer
        )

    def expire_tokens(self) -> None:
        self._tokens.expire_all()

    def expire_hosted_pages(self) -> None:
        self.state.expire_hosted_pages()

    def hold_webhooks(self) -> None:
        self._webhooks.hold()

    def release_webhooks(self) -> None:
        self._webhooks.release()

    def drop_next_webhooks(self, count: int) -> None:
        self._webhooks.drop_next(count)

    def resend(self, event_id: str) -> None:
        self._webhooks.resend(self.state.event(event_id))

    def go_down(self) -> None:
        self._faults.down = True

    def come_up(self) -> None:
        self._faults.down = False

    def set_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._faults.delay = seconds

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        """The next ``count`` API calls (not token requests) answer ``status``; 0 clears."""
        if count < 0:
            raise ValueError("count must not be negative")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")
        self._faults = dataclasses.replace(
            self._faults, fail_count=count, fail_status=status, fail_retry_after=retry_after
        )

    async def wait_until(
        self,
        predicate: Callable[[BillingSimulator], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline is the point of this test helper
    ) -> None:
        """Wait for predicate(self), re-checked on every event, delivery and state change."""
        await self._waiters.wait_until(lambda: predicate(self), timeout, seen=self._seen)

    def _seen(self) -> str:
        """The events and webhook deliveries so far, for a wait that timed out."""
        webhooks = ", ".join(f"{d.event_type}:{d.state}" for d in self.webhook_deliveries)
        types = ", ".join(event.event_type for event in self.events) or "none"
        return f"events: {types}; webhooks: {webhooks or 'none'}"

    # -- the app -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        api = BillingApi(self.state, self._tokens, self.organization_id)
        app = web.Application(middlewares=[self._fault_middleware, api.middleware])
        api.register(app)
        Checkout(self.state).register(app)
        app.router.add_get("/_sim/state", self._get_state)
        app.router.add_get("/_sim/events", self._get_events)
        app.router.add_get("/_sim/webhooks", self._get_webhooks)
        app.router.add_post("/_sim/webhooks", self._post_webhooks)
        app.router.add_post("/_sim/events/{id}/resend", self._post_resend)
        app.router.add_post("/_sim/faults", self._post_faults)
        app.router.add_post("/_sim/today", self._post_today)
        app.router.add_post("/_sim/expire_hosted_pages", self._post_expire_pages)
        app.router.add_post("/_sim/expire_tokens", self._post_expire_tokens)
        app.cleanup_ctx.append(self._webhook_worker)
        return app

    async def _webhook_worker(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            worker = asyncio.create_task(self._webhooks.run(session))
            yield
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        is_api = path.startswith(API_PREFIX + "/")
        if not (is_api or path == TOKEN_PATH):
            return await handler(request)
        if is_api:
            organization = request.headers.get(ORG_HEADER, "")
            self.api_calls.append(ApiCall(request.method, path, organization))
        faults = self._faults
        if faults.down:  # drop the connection unanswered
            self._log.info("billing_connection_dropped", path=path)
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # written to a closed transport: aiohttp discards it
        if faults.delay > 0:
            try:
                await asyncio.sleep(faults.delay)
            except asyncio.CancelledError:  # test servers cancel handlers whose client left
                self._abandon(path)
                raise
            if request.transport is None or request.transport.is_closing():
                self._abandon(path)
                return web.Response()  # nobody listens: nothing is applied
        if is_api and faults.fail_count > 0:
            faults.fail_count -= 1
            headers = {}
            if faults.fail_retry_after is not None:
                headers["Retry-After"] = f"{faults.fail_retry_after:g}"
            self._log.info("billing_scripted_failure", path=path, status=faults.fail_status)
            body = _scripted_body(faults.fail_status)
            return web.json_response(body, status=faults.fail_status, headers=headers)
        return await handler(request)

    def _abandon(self, path: str) -> None:
        """A delayed request whose client gave up: Zoho would not apply it either."""
        self.abandoned_requests += 1
        self._log.info("billing_request_abandoned", path=path)
        self._waiters.notify()

    def _on_event(self, event: Event) -> None:
        self._log.info("billing_event", event_id=event.event_id, event_type=event.event_type)
        self._webhooks.submit(event)
        self._waiters.notify()

    # -- control routes ----------------------------------------------------------------------

    async def _get_state(self, request: web.Request) -> web.Response:
        now = self.state.clock()
        return web.json_response(
            {
                "today": self.today.isoformat(),
                "token_requests": self.token_requests,
                "customers": [c.to_json() for c in self.customers.values()],
                "subscriptions": [s.to_json() for s in self.subscriptions.values()],
                "hosted_pages": [p.to_json(now) for p in self.hosted_pages.values()],
            }
        )

    async def _get_events(self, request: web.Request) -> web.Response:
        return web.json_response({"events": [event.payload for event in self.events]})

    async def _get_webhooks(self, request: web.Request) -> web.Response:
        rows = [dataclasses.asdict(delivery) for delivery in self.webhook_deliveries]
        return web.json_response({"webhooks": rows})

    async def _post_webhooks(self, request: web.Request) -> web.Response:
        wanted = await self._control_body(request, _WebhooksRequest)
        if isinstance(wanted, web.Response):
            return wanted
        if wanted.drop_next is not None:
            self.drop_next_webhooks(wanted.drop_next)
        if wanted.hold is True:
            self.hold_webhooks()
        elif wanted.hold is False:
            self.release_webhooks()
        return web.json_response({"ok": True})

    async def _post_resend(self, request: web.Request) -> web.Response:
        try:
            self.resend(request.match_info["id"])
        except ApiError as exc:
            return web.json_response({"ok": False, "error": exc.message}, status=404)
        except ValueError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=409)
        return web.json_response({"ok": True})

    async def _post_faults(self, request: web.Request) -> web.Response:
        wanted = await self._control_body(request, _FaultsRequest)
        if isinstance(wanted, web.Response):
            return wanted
        if wanted.fail_next is None and wanted.model_fields_set & {"status", "retry_after"}:
            error = "status and retry_after only apply together with fail_next"
            return web.json_response({"ok": False, "error": error}, status=400)
        if wanted.fail_next is not None:
            self.fail_next(wanted.fail_next, wanted.status, wanted.retry_after)
        if wanted.delay is not None:
            self.set_delay(wanted.delay)
        if wanted.down is not None:
            self._faults.down = wanted.down
        return web.json_response({"ok": True})

    async def _post_today(self, request: web.Request) -> web.Response:
        wanted = await self._control_body(request, _TodayRequest)
        if isinstance(wanted, web.Response):
            return wanted
        self.set_today(wanted.day)
        return web.json_response({"ok": True, "today": self.today.isoformat()})

    async def _post_expire_pages(self, request: web.Request) -> web.Response:
        self.expire_hosted_pages()
        return web.json_response({"ok": True})

    async def _post_expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"ok": True})

    @staticmethod
    async def _control_body(request: web.Request, model: type[M]) -> M | web.Response:
        try:
            return model.model_validate_json(await request.read())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
                for error in exc.errors(include_input=False)
            )
            return web.json_response({"ok": False, "error": problems}, status=400)
