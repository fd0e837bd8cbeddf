"""``BillingSimulator``: the Zoho Billing side of the wire as one aiohttp app, with its state,
its webhooks to the broker, a calendar tests can move, and a fault script.

Routes: the token endpoint (``/oauth/v2/token``), the REST API (``/billing/v1/...``), the hosted
checkout pages (``/hostedpages/{id}/...``) and controls under ``/_sim/``. Faults (down, slow,
scripted errors) hit the token endpoint and the API only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Collection
from datetime import date
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from broker.simulators.waiting import ChangeWaiters

from .api import API_PREFIX, ApiRequest, BillingApi
from .catalog import Catalog, load_catalog
from .checkout import Checkout
from .controls import Controls
from .faults import ApiCall, FaultGate, Faults
from .ids import IdStyle
from .inputs import CustomerInput, CustomFieldInput
from .lifecycle import BillingState
from .listing import EventListing, EventOrder
from .oauth import TokenIssuer
from .records import Customer, Event, HostedPage, Subscription
from .scopes import ALL_SCOPES
from .subscriptions import DunningPolicy, Proration
from .webhooks import WebhookDelivery, WebhookSender

__all__ = ["ApiCall", "BillingSimulator"]


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
        requests_per_minute: int | None = None,
        requests_per_day: int | None = None,
        id_style: IdStyle = IdStyle.STRINGS,
        dunning: DunningPolicy | None = None,
        free_plan_code: str | None = None,
        scopes: Collection[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        events_order: EventOrder = EventOrder.NEWEST_FIRST,
        event_filters: bool = False,
        hosted_page_wrapped: bool = False,
        list_page_context: bool = False,
    ) -> None:
        """``customer_fields``: the customer custom fields the organisation defined, e.g.
        ``("zuid",)`` as the vendor's documented setup makes it; None accepts any field.
        ``requests_per_minute``: Zoho's per-organisation limit; None (the default) has none.
        ``requests_per_day``: the daily one, per simulated calendar day (``today``).
        ``scopes``: what the refresh token was granted; None (the default) is every scope the
        API's routes need (``scopes.ALL_SCOPES``).
        ``clock``: monotonic seconds for token and page lifetimes and the request limit.
        ``events_order``, ``event_filters``: how ``GET /events`` lists (``EventListing``).
        ``hosted_page_wrapped``: answer ``GET /hostedpages/{id}`` inside a ``hostedpage``
        wrapper instead of flat as documented. ``list_page_context``: send ``page_context`` on
        the plans, add-ons and subscriptions lists too (documented for invoices only, so off
        by default: a reader must then go on while pages come back full)."""
        self.organization_id = organization_id
        self._event_listing = EventListing(events_order, event_filters)
        self._hosted_page_wrapped = hosted_page_wrapped
        self._list_page_context = list_page_context
        self._log = structlog.get_logger("billing_simulator")
        self._waiters = ChangeWaiters()
        self._gate = FaultGate(clock, on_abandon=self._waiters.notify, today=lambda: self.today)
        self._gate.faults.per_minute = requests_per_minute
        self._gate.faults.per_day = requests_per_day
        self._tokens = TokenIssuer(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            ttl_seconds=access_token_ttl_seconds,
            scopes=ALL_SCOPES if scopes is None else scopes,
            clock=clock,
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
            clock=clock,
            on_event=self._on_event,
            customer_fields=customer_fields,
            dunning=dunning,
            free_plan_code=free_plan_code,
        )
        self.state.set_id_style(id_style)
        # Every API call as received (newest 1,000), for tests that check the caller's requests.
        self.api_requests: list[ApiRequest] = []

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
    def faults(self) -> Faults:
        return self._gate.faults

    @property
    def api_calls(self) -> list[ApiCall]:
        return self._gate.api_calls

    @property
    def abandoned_requests(self) -> int:
        return self._gate.abandoned_requests

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
        billing_cycles: int = -1,
    ) -> Subscription:
        """A subscription as if bought through a checkout: webhooks and all, no browser.
        ``billing_cycles``: how many terms it runs before it expires (-1: until cancelled).
        ``zuid`` / ``zgid`` go on the customer, as if set through ``PUT /customers/{id}``."""
        fields = [
            CustomFieldInput(label=label, value=value)
            for label, value in (("zuid", zuid), ("zgid", zgid))
            if value is not None
        ]
        customer = CustomerInput(display_name=display_name, email=email)
        return self.state.subscribe(
            plan_code,
            quantity=quantity,
            addons=addons,
            customer_id=customer_id,
            customer=customer,
            customer_fields=fields,
            billing_cycles=billing_cycles,
        )

    def map_hosted_pages(self, origin: str | None) -> None:
        """Serve hosted pages from ``origin`` (a vendor's mapped domain); None: this server."""
        self.state.pages.mapped_origin = origin.rstrip("/") if origin else None

    def expire_tokens(self) -> None:
        self._tokens.expire_all()

    def grant_scopes(self, scopes: Collection[str]) -> None:
        """Tokens issued from now on carry ``scopes`` (the vendor generated a new refresh
        token); tokens already issued keep theirs until they expire."""
        self._tokens.grant(scopes)

    def expire_hosted_pages(self) -> None:
        self.state.expire_hosted_pages()

    def round_day_rate_first(self, rounding: bool = True) -> None:
        """Prorate with a day rate rounded first, not as Zoho documents: a billing whose figure
        differs from the broker's preview (False goes back to Zoho's rule)."""
        self.state.proration = Proration.DAY_RATE_FIRST if rounding else Proration.ZOHO

    def hold_webhooks(self) -> None:
        self._webhooks.hold()

    def release_webhooks(self) -> None:
        self._webhooks.release()

    def drop_next_webhooks(self, count: int) -> None:
        self._webhooks.drop_next(count)

    def drop_all_webhooks(self, dropping: bool = True) -> None:
        """Drop every new webhook (the events are still logged) until told otherwise."""
        self._webhooks.drop_all(dropping)

    def drop_webhook_fraction(self, fraction: float, *, seed: int = 0) -> None:
        self._webhooks.drop_fraction(fraction, seed)

    def limit_requests(self, per_minute: int | None) -> None:
        """At most ``per_minute`` API calls a minute per organisation; None lifts the limit."""
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._gate.faults.per_minute = per_minute

    def limit_daily_requests(self, per_day: int | None) -> None:
        """At most ``per_day`` API calls per organisation and simulated day; None lifts it."""
        if per_day is not None and per_day < 1:
            raise ValueError("per_day must be at least 1")
        self._gate.faults.per_day = per_day

    def resend(self, event_id: str) -> None:
        self._webhooks.resend(self.state.event(event_id))

    def go_down(self) -> None:
        self._gate.faults.down = True

    def come_up(self) -> None:
        self._gate.faults.down = False

    def hold(self) -> None:
        """Keep API requests waiting, unanswered, until ``release``."""
        self._gate.open.clear()

    def release(self) -> None:
        self._gate.open.set()

    @property
    def held_requests(self) -> int:
        """API requests waiting behind ``hold`` now."""
        return self._gate.held

    def set_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._gate.faults.delay = seconds

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        """The next ``count`` API calls (not token requests) answer ``status``; 0 clears."""
        if count < 0:
            raise ValueError("count must not be negative")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")
        self._gate.faults = dataclasses.replace(
            self._gate.faults, fail_count=count, fail_status=status, fail_retry_after=retry_after
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
        api = BillingApi(
            self.state,
            self._tokens,
            self.organization_id,
            self._webhooks.history,
            received=self.api_requests,
            hosted_page_wrapped=self._hosted_page_wrapped,
            events=self._event_listing,
            page_context=self._list_page_context,
        )
        app = web.Application(middlewares=[self._gate.middleware, api.middleware])
        api.register(app)
        Checkout(self.state).register(app)
        Controls(self).register(app)
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

    def _on_event(self, event: Event) -> None:
        self._log.info("billing_event", event_id=event.event_id, event_type=event.event_type)
        self._webhooks.submit(event)
        self._waiters.notify()
