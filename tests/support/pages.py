"""Helpers for the Manage Subscription page tests: the broker, the Zoho Billing simulator and the
Developer Console simulator wired together like ``broker demo`` does, and a browser that keeps the
page's session cookie.

Ports: the broker's settings name the billing simulator's address, and the billing simulator's
webhooks name the broker's. The broker's listening socket is therefore bound first (port 0), the
billing simulator is built with that address and started, and only then is the broker started on
the socket it already owns. Webhooks reach ``/webhooks/billing`` with the zapikey, as Zoho's would.

The broker's clock runs in real time from noon UTC on the simulator's "today", so the day the page
sends with a pause is the day billing agrees it is.

The fixtures at the end (``make_world``, ``world``, ``owner``, ``live``) serve every page test;
``tests/conftest.py`` loads this module as a plugin so that each test module need not repeat them.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, get_port_socket
from itsdangerous import URLSafeSerializer
from multidict import CIMultiDictProxy
from yarl import URL

from broker.app import create_app
from broker.manage.sessions import COOKIE_NAME
from broker.simulators.billing import BillingSimulator
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import clock_key, store_key
from tests.conftest import fast_settings
from tests.support.basics import (
    APP_DOMAIN,
    EMAIL,
    ZAPIKEY,
    ZGID,
    ZUID,
    eventually,
    link_signature,
)

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
ServerFactory = Callable[..., Awaitable[TestServer]]

TODAY = date(2026, 6, 10)
ORGANIZATION_ID = "10234695"
CLIENT_ID = "1000.PAGETESTS"
CLIENT_SECRET = "page-tests-client-secret-0123"
REFRESH_TOKEN = "1000.page-tests-refresh-token-4567"

STANDARD, PROFESSIONAL = "1001", "1002"  # Developer Console plan ids in the simulator's catalog
STANDARD_CODE = f"{APP_DOMAIN}_{STANDARD}"
OWNER_ZUID, OWNER_ZGID = ZUID, ZGID
MEMBER_ZUID = "60000000003"  # another user of the owner's org
OTHER_ZUID, OTHER_ZGID = "60000000002", "70000000002"  # a user of another org
OTHER_EMAIL = "someone@other.example"

_HOSTED_PAGE_PATH = re.compile(r"^/hostedpages/([^/]+)/checkout$")


@dataclass
class RunningClock:
    """A wall clock that starts at noon UTC on a day and runs in real time; ``advance`` moves
    it on at once (a TTL or a Retry-After passes without the test waiting)."""

    start: float
    began: float = field(default_factory=time.time)
    skipped: float = 0.0

    def __call__(self) -> float:
        return self.start + (time.time() - self.began) + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += seconds


def session_payload(cookie: str) -> dict[str, Any]:
    """What a session cookie (itsdangerous: ``payload.timestamp.signature``) says, unverified."""
    payload = cookie.rsplit(".", 2)[0]
    document: dict[str, Any] = URLSafeSerializer(b"unused").load_payload(payload.encode())
    return document


def running_clock(day: date) -> RunningClock:
    """A wall clock that starts at noon UTC on ``day`` and runs in real time."""
    return RunningClock(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp())


def visitor(
    zuid: str = OWNER_ZUID,
    zgid: str = OWNER_ZGID,
    *,
    email: str | None = EMAIL,
    display_name: str = "Ada Owner",
    company_name: str = "Example Org",
    **extra: str,
) -> dict[str, str]:
    """The landing parameters the Vertical Solution sends for a signed-in user."""
    params = {
        "zuid": zuid,
        "zgid": zgid,
        "display_name": display_name,
        "company_name": company_name,
        **extra,
    }
    if email is not None:
        params["email"] = email
    return params


@dataclass
class Page:
    """One answer as the browser saw it (redirects are not followed)."""

    status: int
    text: str
    headers: CIMultiDictProxy[str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def hostedpage_id(self) -> str:
        """The id of the billing checkout this answer redirects to."""
        found = _HOSTED_PAGE_PATH.match(URL(self.location).path)
        assert found, f"not a redirect to a hosted checkout page: {self.status} {self.location}"
        return found.group(1)


@dataclass
class Browser:
    """One person's browser: its own cookie jar, so its own page session."""

    client: Client

    async def get(self, path: str, params: Any = None, **kwargs: Any) -> Page:
        response = await self.client.get(path, params=params, allow_redirects=False, **kwargs)
        return Page(response.status, await response.text(), response.headers)

    async def post(self, path: str, data: Any = None, **kwargs: Any) -> Page:
        response = await self.client.post(path, data=data, allow_redirects=False, **kwargs)
        return Page(response.status, await response.text(), response.headers)

    async def enter(
        self, params: dict[str, str] | None = None, *, sign: bool = True, **kwargs: Any
    ) -> Page:
        """Open the Manage Subscription URL as the app links to it: signed, with a fresh ts and
        nonce (``sign=False`` sends the parameters exactly as given)."""
        pairs = list((visitor() if params is None else params).items())
        if sign:
            pairs += link_signature(pairs, now=self.client.app[clock_key]())
        return await self.get("/manage", params=pairs, **kwargs)

    async def submit(self, path: str, fields: dict[str, Any] | None = None) -> Page:
        """Post a page form with this session's CSRF token, as the page's own forms do."""
        return await self.post(path, data={"csrf_token": self.session()["csrf"], **(fields or {})})

    def session_cookie(self) -> str | None:
        cookies = self.client.session.cookie_jar.filter_cookies(self.client.make_url("/manage"))
        morsel = cookies.get(COOKIE_NAME)
        return morsel.value if morsel else None

    def session(self) -> dict[str, Any]:
        """The signed session cookie's payload (the test reads it; page scripts cannot)."""
        cookie = self.session_cookie()
        assert cookie, "this browser has no page session"
        return session_payload(cookie)


@dataclass
class PageWorld:
    """The broker, both simulators, and ways to act on them the way people and Zoho would."""

    broker: TestServer
    sim: BillingSimulator
    billing_server: TestServer
    checkout: Client  # a plain client on the billing simulator: the buyer on the hosted page
    platform: PlatformSimulator
    clock: RunningClock
    _client_factory: ClientFactory
    _spare: list[Browser] = field(default_factory=list)

    @property
    def billing_origin(self) -> str:
        return str(self.billing_server.make_url("")).rstrip("/")

    @property
    def app(self) -> web.Application:
        return self.broker.app

    async def browser(self) -> Browser:
        """A fresh browser with an empty cookie jar."""
        if self._spare:
            return self._spare.pop()
        return Browser(await self._client_factory(self.broker))

    async def signed_in(self, params: dict[str, str] | None = None) -> Browser:
        """A new browser that entered the page with ``params`` (the owner by default)."""
        browser = await self.browser()
        entered = await browser.enter(params)
        assert entered.status == 303, entered.text
        return browser

    async def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """The broker's own database, read through its store."""
        return await self.app[store_key].read(lambda db: list(db.select_all(sql, params)))

    async def audit(self, action: str | None = None) -> list[dict[str, Any]]:
        if action is None:
            return await self.rows("SELECT * FROM audit_log ORDER BY id")
        return await self.rows("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action])

    async def pay(self, hostedpage_id: str, *, outcome: str = "pay") -> str:
        """Press "Pay now" (or "Simulate a failed payment") on the hosted checkout page; the
        address billing sends the browser back to."""
        response = await self.checkout.post(
            f"/hostedpages/{hostedpage_id}/{outcome}", allow_redirects=False
        )
        assert response.status == 303, await response.text()
        return response.headers["Location"]

    async def come_back(self, browser: Browser, location: str) -> Page:
        """The browser follows billing's redirect back to the broker."""
        url = URL(location)
        assert url.port == self.broker.port, location
        return await browser.get(url.path_qs)

    async def subscribed(
        self,
        browser: Browser,
        *,
        planid: str = STANDARD,
        users: int = 5,
        storage: int = 0,
        frequency: str = "monthly",
    ) -> str:
        """Subscribe through the page and the checkout; returns the new subscription id once the
        Developer Console has the Add."""
        adds = len([c for c in self.platform.applied if c.method == "POST"])
        opened = await self.open_checkout(
            browser, planid=planid, users=users, storage=storage, frequency=frequency
        )
        back = await self.come_back(browser, await self.pay(opened.hostedpage_id))
        assert back.status == 303, back.text
        await self.platform.wait_until(
            lambda p: len([c for c in p.applied if c.method == "POST"]) == adds + 1
        )
        subscription_id: str = self.platform.applied[-1].body["subscription_id"]  # type: ignore[index]
        return subscription_id

    async def bought_twice(self, owner: Browser) -> tuple[str, str]:
        """The owner subscribes through the page, then the same org buys again elsewhere
        (billing's own portal, say; its webhooks arrive): two subscriptions that bill, a
        conflict. Returns (kept, duplicate): the platform's one, and the one nothing is sent
        for."""
        kept = await self.subscribed(owner)
        [customer_id] = {s.customer.customer_id for s in self.sim.subscriptions.values()}
        duplicate = self.sim.subscribe(
            STANDARD_CODE, quantity=2, customer_id=customer_id, zuid=OWNER_ZUID, zgid=OWNER_ZGID
        ).subscription_id
        await self.settle()
        return kept, duplicate

    async def open_checkout(
        self,
        browser: Browser,
        *,
        planid: str = STANDARD,
        users: int | str = 5,
        storage: int | str = 0,
        frequency: str = "monthly",
        action: str = "subscribe",
    ) -> Page:
        """Open the plan form (which reads the catalog) and submit it; the 303 to checkout."""
        form = await browser.get(f"/manage/{action}")
        assert form.status == 200, form.text
        page = await browser.submit(
            f"/manage/{action}",
            {"planid": planid, "frequency": frequency, "users": users, "storage": storage},
        )
        assert page.status == 303, page.text
        return page

    async def settle(self) -> None:
        """Wait until billing's webhooks have reached the broker and every delivery they or the
        page queued has finished: after this, nothing more is on its way to the platform."""
        await self.sim.wait_until(
            lambda s: all(d.state in ("delivered", "failed") for d in s.webhook_deliveries)
        )
        assert all(d.state == "delivered" for d in self.sim.webhook_deliveries), [
            (d.event_type, d.state, d.status) for d in self.sim.webhook_deliveries
        ]
        await self.deliveries_finished()

    async def deliveries_finished(self) -> None:
        """Wait until every queued delivery's outcome is recorded (the platform may have its
        call a moment before the broker has written what came back)."""

        async def finished() -> bool:
            rows = await self.rows("SELECT state FROM deliveries")
            return all(row["state"] in ("done", "dead", "superseded") for row in rows)

        await eventually(finished, message="every delivery finished")

    def calls(self, method: str | None = None) -> list[Any]:
        """Calls the Developer Console applied (optionally of one HTTP method)."""
        return [c for c in self.platform.applied if method is None or c.method == method]


def billing_section(origin: str, **overrides: Any) -> dict[str, Any]:
    """A ``[billing]`` section pointing at the simulator, with retries in milliseconds."""
    return {
        "base_url": f"{origin}/billing/v1",
        "accounts_url": origin,
        "organization_id": ORGANIZATION_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "request_timeout_seconds": 2.0,
        "max_attempts": 2,
        "initial_backoff_seconds": 0.001,
        "max_backoff_seconds": 0.005,
        # The per-minute budget would make a long reconciliation wait real minutes: tests of
        # it (test_billing_budget.py) set it themselves.
        "calls_per_minute": 10_000,
        **overrides,
    }


async def start_world(
    *,
    tmp_path: Path,
    store: dict[str, Any] | None = None,
    platform: PlatformSimulator,
    platform_server: TestServer,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    **sections: dict[str, Any],
) -> PageWorld:
    """Start the billing simulator and the broker (platform already running); ``sections``
    override broker settings (``billing`` is merged into the simulator-pointing section;
    ``billing_simulator`` holds keyword arguments for the simulator itself; ``broker_platform``
    is the broker's ``platform`` section, whose name the simulator argument takes)."""
    broker_socket = get_port_socket("127.0.0.1", 0, socket.AF_INET)
    try:
        broker_port = broker_socket.getsockname()[1]
        sim = BillingSimulator(
            app_domain=APP_DOMAIN,
            organization_id=ORGANIZATION_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=REFRESH_TOKEN,
            webhook_url=f"http://127.0.0.1:{broker_port}/webhooks/billing",
            webhook_zapikey=ZAPIKEY,
            today=TODAY,
            **sections.pop("billing_simulator", {}),
        )
        billing_server = await aiohttp_server(sim.app())
        origin = str(billing_server.make_url("")).rstrip("/")
        clock = running_clock(TODAY)
        billing = billing_section(origin, **sections.pop("billing", {}))
        # Tests move the simulator's calendar days ahead of the broker's clock in one step.
        if "broker_platform" in sections:
            sections["platform"] = sections.pop("broker_platform")
        webhooks = {"future_tolerance_seconds": 366 * 86400.0, **sections.pop("webhooks", {})}
        sections["webhooks"] = webhooks
        settings = fast_settings(
            tmp_path,
            str(platform_server.make_url("")).rstrip("/"),
            store=store,
            billing=billing,
            **sections,
        )
        broker = TestServer(
            create_app(settings, clock=clock), socket_factory=lambda *_: broker_socket
        )
    except BaseException:
        broker_socket.close()
        raise
    first = Browser(await aiohttp_client(broker))  # starts the broker on its socket
    checkout = await aiohttp_client(billing_server)
    return PageWorld(
        broker, sim, billing_server, checkout, platform, clock, aiohttp_client, [first]
    )


# --- fixtures -----------------------------------------------------------------------------------

WorldFactory = Callable[..., Awaitable[PageWorld]]


@pytest.fixture
def page_plans() -> dict[str, Any]:
    """``[plans]`` settings every world of a module starts with; a module about pages that
    offer a pause sets ``pause_policy`` here (the default offers none)."""
    return {}


@pytest.fixture
def make_world(
    tmp_path: Path,
    broker_store: dict[str, Any],
    page_plans: dict[str, Any],
    simulator: PlatformSimulator,
    platform_server: TestServer,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
) -> WorldFactory:
    """Start a world whose broker settings take the given sections (see ``start_world``)."""

    async def start(**sections: dict[str, Any]) -> PageWorld:
        sections["plans"] = {**page_plans, **sections.get("plans", {})}
        return await start_world(
            tmp_path=tmp_path,
            store=broker_store,
            platform=simulator,
            platform_server=platform_server,
            aiohttp_server=aiohttp_server,
            aiohttp_client=aiohttp_client,
            **sections,
        )

    return start


@pytest.fixture
async def world(make_world: WorldFactory) -> PageWorld:
    return await make_world()


@pytest.fixture
async def owner(world: PageWorld) -> Browser:
    """The org's billing owner, signed in to the page."""
    return await world.signed_in()


@pytest.fixture
async def live(world: PageWorld, owner: Browser) -> str:
    """A live Standard subscription, 5 users, bought by ``owner`` through the page."""
    return await world.subscribed(owner)
