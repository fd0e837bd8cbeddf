"""The simulator's own controls under ``/_sim/``, for the demo and for tests that drive it over
HTTP: read the state, the event log and the webhook deliveries; move the calendar; script faults,
dropped webhooks and id typing; create, backdate and decline subscriptions. Each body is strict,
so a typo is a 400 naming the field rather than a silent no-op.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ApiError
from .ids import IdStyle
from .money import MoneyEventType

if TYPE_CHECKING:
    from .simulator import BillingSimulator

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FaultsRequest(_Strict):
    fail_next: int | None = Field(default=None, ge=0)
    status: int = Field(503, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0)
    down: bool | None = None
    per_minute: int | None = Field(default=None, ge=0)  # 0 lifts the request limit
    per_day: int | None = Field(default=None, ge=0)  # 0 lifts the daily limit


class WebhooksRequest(_Strict):
    hold: bool | None = None
    drop_next: int | None = Field(default=None, ge=0)
    drop_all: bool | None = None
    drop_fraction: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0
    ids: IdStyle | None = Field(default=None, strict=False)


class TodayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date = Field(alias="date")


class SubscribeRequest(_Strict):
    plan_code: str = Field(min_length=1)
    quantity: int = Field(1, ge=1)
    addons: dict[str, int] = Field(default_factory=dict)
    customer_id: str | None = None
    display_name: str = Field("Example Org", min_length=1)
    email: str = "owner@example.com"
    zuid: str | None = None
    zgid: str | None = None
    billing_cycles: int = Field(-1, ge=-1)


class BackdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date = Field(alias="date")
    status: str | None = None
    plan_code: str | None = None
    quantity: int | None = Field(default=None, ge=1)


class PaymentsRequest(_Strict):
    decline: bool


class MoneyRequest(_Strict):
    event: MoneyEventType  # payment_refunded, payment_chargeback, invoice_voided, creditnote_added
    amount: Decimal | None = None  # default: the whole term's amount


class Controls:
    def __init__(self, sim: BillingSimulator) -> None:
        self._sim = sim

    def register(self, app: web.Application) -> None:
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get("/_sim/state", self._get_state)
        add_get("/_sim/events", self._get_events)
        add_get("/_sim/webhooks", self._get_webhooks)
        add_post("/_sim/webhooks", self._post_webhooks)
        add_post("/_sim/events/{id}/resend", self._post_resend)
        add_post("/_sim/faults", self._post_faults)
        add_post("/_sim/today", self._post_today)
        add_post("/_sim/expire_hosted_pages", self._post_expire_pages)
        add_post("/_sim/expire_tokens", self._post_expire_tokens)
        add_post("/_sim/subscriptions", self._post_subscription)
        add_post("/_sim/subscriptions/{id}/backdate", self._post_backdate)
        add_post("/_sim/subscriptions/{id}/payments", self._post_payments)
        add_post("/_sim/subscriptions/{id}/money", self._post_money)

    async def _get_state(self, request: web.Request) -> web.Response:
        sim = self._sim
        now = sim.state.clock()
        return web.json_response(
            {
                "today": sim.today.isoformat(),
                "token_requests": sim.token_requests,
                "customers": [c.to_json() for c in sim.customers.values()],
                "subscriptions": [s.to_json() for s in sim.subscriptions.values()],
                "hosted_pages": [
                    p.to_json() | {"expired": p.has_expired(now)} for p in sim.hosted_pages.values()
                ],
            }
        )

    async def _get_events(self, request: web.Request) -> web.Response:
        return web.json_response({"events": [event.payload for event in self._sim.events]})

    async def _get_webhooks(self, request: web.Request) -> web.Response:
        rows = [dataclasses.asdict(delivery) for delivery in self._sim.webhook_deliveries]
        return web.json_response({"webhooks": rows})

    async def _post_webhooks(self, request: web.Request) -> web.Response:
        wanted = await _body(request, WebhooksRequest)
        if isinstance(wanted, web.Response):
            return wanted
        sim = self._sim
        if wanted.drop_next is not None:
            sim.drop_next_webhooks(wanted.drop_next)
        if wanted.drop_all is not None:
            sim.drop_all_webhooks(wanted.drop_all)
        if wanted.drop_fraction is not None:
            sim.drop_webhook_fraction(wanted.drop_fraction, seed=wanted.seed)
        if wanted.ids is not None:
            sim.state.set_id_style(wanted.ids)
        if wanted.hold is True:
            sim.hold_webhooks()
        elif wanted.hold is False:
            sim.release_webhooks()
        return web.json_response({"ok": True})

    async def _post_resend(self, request: web.Request) -> web.Response:
        try:
            self._sim.resend(request.match_info["id"])
        except ApiError as exc:
            return _refused(exc.message, 404)
        except ValueError as exc:
            return _refused(str(exc), 409)
        return web.json_response({"ok": True})

    async def _post_faults(self, request: web.Request) -> web.Response:
        wanted = await _body(request, FaultsRequest)
        if isinstance(wanted, web.Response):
            return wanted
        if wanted.fail_next is None and wanted.model_fields_set & {"status", "retry_after"}:
            return _refused("status and retry_after only apply together with fail_next", 400)
        sim = self._sim
        if wanted.fail_next is not None:
            sim.fail_next(wanted.fail_next, wanted.status, wanted.retry_after)
        if wanted.delay is not None:
            sim.set_delay(wanted.delay)
        if wanted.down is not None:
            sim.faults.down = wanted.down
        if wanted.per_minute is not None:
            sim.limit_requests(wanted.per_minute or None)
        if wanted.per_day is not None:
            sim.limit_daily_requests(wanted.per_day or None)
        return web.json_response({"ok": True})

    async def _post_today(self, request: web.Request) -> web.Response:
        wanted = await _body(request, TodayRequest)
        if isinstance(wanted, web.Response):
            return wanted
        self._sim.set_today(wanted.day)
        return web.json_response({"ok": True, "today": self._sim.today.isoformat()})

    async def _post_expire_pages(self, request: web.Request) -> web.Response:
        self._sim.expire_hosted_pages()
        return web.json_response({"ok": True})

    async def _post_expire_tokens(self, request: web.Request) -> web.Response:
        self._sim.expire_tokens()
        return web.json_response({"ok": True})

    async def _post_subscription(self, request: web.Request) -> web.Response:
        wanted = await _body(request, SubscribeRequest)
        if isinstance(wanted, web.Response):
            return wanted
        options = wanted.model_dump(exclude={"plan_code"})
        try:
            sub = self._sim.subscribe(wanted.plan_code, **options)
        except ApiError as exc:
            return _refused(exc.message, exc.status)
        return web.json_response({"ok": True, "subscription": sub.to_json()}, status=201)

    async def _post_backdate(self, request: web.Request) -> web.Response:
        wanted = await _body(request, BackdateRequest)
        if isinstance(wanted, web.Response):
            return wanted
        changes = wanted.model_dump(exclude={"day"})
        try:
            sub = self._sim.state.backdate(request.match_info["id"], wanted.day, **changes)
        except ApiError as exc:
            return _refused(exc.message, exc.status)
        return web.json_response({"ok": True, "subscription": sub.to_json()})

    async def _post_payments(self, request: web.Request) -> web.Response:
        wanted = await _body(request, PaymentsRequest)
        if isinstance(wanted, web.Response):
            return wanted
        try:
            sub = self._sim.state.decline_payments(request.match_info["id"], wanted.decline)
        except ApiError as exc:
            return _refused(exc.message, exc.status)
        return web.json_response({"ok": True, "card_declines": sub.card_declines})

    async def _post_money(self, request: web.Request) -> web.Response:
        wanted = await _body(request, MoneyRequest)
        if isinstance(wanted, web.Response):
            return wanted
        try:
            self._sim.state.money_event(request.match_info["id"], wanted.event, wanted.amount)
        except ApiError as exc:
            return _refused(exc.message, exc.status)
        return web.json_response({"ok": True, "event": wanted.event.value})


def _refused(error: str, status: int) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status)


async def _body(request: web.Request, model: type[M]) -> M | web.Response:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False)
        )
        return _refused(problems, 400)
