"""What the billing simulator and billing client tests share: one simulated Zoho Billing org, a
caller of its API holding one access token (``Api``), and a receiver standing in for the
broker's webhook endpoint (``Receiver``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.simulators.billing import BillingSimulator

APP = "testapp"
CLIENT_ID = "1000.SIMCLIENT"
CLIENT_SECRET = "sim-client-secret-0123"
REFRESH_TOKEN = "1000.sim-refresh-token-4567"
ORG = "10234695"
ORG_HEADER = "X-com-zoho-subscriptions-organizationid"
JUNE_1 = date(2026, 6, 1)
STANDARD, PROFESSIONAL, STANDARD_YEARLY = f"{APP}_1001", f"{APP}_1002", f"{APP}_1001_Y"
STORAGE = f"{APP}_storage"
FREE, TRIAL = f"{APP}_FREE", f"{APP}_1001T"
ZAPIKEY = "sim-zapikey-0123456789abcdef"
BACK = "https://broker.example/landing?from=billing"

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
ServerFactory = Callable[..., Awaitable[TestServer]]


def make_sim(**overrides: Any) -> BillingSimulator:
    """A billing simulator for org ORG on JUNE_1, with these credentials."""
    options: dict[str, Any] = {
        "app_domain": APP,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "organization_id": ORG,
        "today": JUNE_1,
    }
    return BillingSimulator(**(options | overrides))


def token_form(**changes: str) -> dict[str, str]:
    return {
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
    } | changes


class Api:
    """A caller of the simulated API that holds one access token, like the broker's client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.token: str | None = None

    async def refresh(self) -> str:
        response = await self.client.post("/oauth/v2/token", data=token_form())
        body = await response.json()
        token: str = body["access_token"]
        self.token = token
        return token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Zoho-oauthtoken {self.token}", ORG_HEADER: ORG}

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        if self.token is None:
            await self.refresh()
        response = await self.client.request(
            method,
            f"/billing/v1{path}",
            json=json,
            params=params,
            headers=self.headers() if headers is None else headers,
        )
        return response.status, await response.json()

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, body = await self.call(method, path, **kwargs)
        assert (status, body["code"]) in ((200, 0), (201, 0)), (status, body)
        return body

    async def open_checkout(
        self,
        plan: str = STANDARD,
        quantity: int = 5,
        *,
        addons: list[dict[str, Any]] | None = None,
        customer: dict[str, Any] | None = None,
        redirect_url: str | None = BACK,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer": customer or buyer(),
            "plan": {"plan_code": plan, "quantity": quantity},
            "addons": addons or [],
            "custom_fields": ORG_FIELDS,
        }
        if redirect_url is not None:
            body["redirect_url"] = redirect_url
        page: dict[str, Any] = (await self.ok("POST", "/hostedpages/newsubscription", json=body))[
            "hostedpage"
        ]
        return page

    async def buy(self, plan: str = STANDARD, quantity: int = 5, **kwargs: Any) -> dict[str, Any]:
        """Open a checkout, pay it in the 'browser', read the page: the new subscription."""
        page = await self.open_checkout(plan, quantity, **kwargs)
        paid = await self.client.post(
            f"/hostedpages/{page['hostedpage_id']}/pay", allow_redirects=False
        )
        assert paid.status == 303, await paid.text()
        result = await self.ok("GET", f"/hostedpages/{page['hostedpage_id']}")
        subscription: dict[str, Any] = result["data"]["subscription"]
        return subscription


def buyer(**changes: Any) -> dict[str, Any]:
    return {
        "display_name": "Example Org",
        "first_name": "Ada",
        "last_name": "Owner",
        "email": "owner@example.com",
        "company_name": "Example Org",
    } | changes


# Where the hosted page request documents custom fields: the subscription's, label and value.
ORG_FIELDS = [{"label": "zuid", "value": "60000000001"}, {"label": "zgid", "value": "70000000001"}]


def event_types(sim: BillingSimulator) -> list[str]:
    return [event.event_type for event in sim.events]


def attempts(sim: BillingSimulator) -> int:
    return sum(delivery.attempts for delivery in sim.webhook_deliveries)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    query: dict[str, str]

    @property
    def payload(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    """Stands in for the broker's webhook endpoint and keeps every post exactly as received."""

    posts: list[Received] = field(default_factory=list)
    status: int = 200

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts.append(Received(dict(request.headers), body, dict(request.query)))
        return web.json_response({"received": True}, status=self.status)
