"""Shared by the Sign in with Zoho tests: the page world in zoho mode beside a real simulated
Zoho Accounts server, and a browser driving Zoho's sign-in page the way a person would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from broker.simulators.accounts import AccountsSimulator, SimUser
from tests.support.basics import EMAIL, ZGID, ZUID
from tests.support.pages import (
    OTHER_EMAIL,
    OTHER_ZGID,
    OTHER_ZUID,
    Browser,
    Page,
    PageWorld,
    visitor,
)

OIDC_CLIENT_ID = "1000.SIGNINWITHZOHO"
OIDC_CLIENT_SECRET = "oidc-client-secret-0123456789"
# Each user's org is what Zoho's Organization API (the simulator's) reports for their token.
OWNER = SimUser(zuid=ZUID, email=EMAIL, name="Ada Owner", zgid=ZGID)
OTHER = SimUser(zuid=OTHER_ZUID, email=OTHER_EMAIL, name="Mallory Other", zgid=OTHER_ZGID)
UNVERIFIED = SimUser(
    zuid="60000000009",
    email="new@example.com",
    name="New User",
    email_verified=False,
    zgid=OTHER_ZGID,
)
NO_ORG = SimUser(zuid="60000000010", email="no-org@example.com", name="Nadia NoOrg")

Client = TestClient[web.Request, web.Application]


@dataclass
class Zoho:
    world: PageWorld
    accounts: AccountsSimulator
    accounts_client: Client

    async def start(self, browser: Browser, params: dict[str, str] | None = None) -> URL:
        """Open the Manage Subscription URL; the address of Zoho's sign-in page it sends to."""
        page = await browser.get("/manage", params=visitor() if params is None else params)
        assert page.status == 303, page.text
        url = URL(page.location)
        assert url.path == "/oauth/v2/auth", page.location
        return url

    async def approve(self, auth_url: URL, user: SimUser = OWNER) -> URL:
        """The user accepts on Zoho's page; the callback address Zoho sends the browser to."""
        response = await self.accounts_client.get(
            auth_url.path,
            params={**auth_url.query, "login_hint": user.email},
            allow_redirects=False,
        )
        assert response.status == 302, await response.text()
        return URL(response.headers["Location"])

    async def sign_in(
        self, browser: Browser, params: dict[str, str] | None = None, user: SimUser = OWNER
    ) -> tuple[Page, URL]:
        callback = await self.approve(await self.start(browser, params), user)
        return await browser.get(callback.path_qs), callback

    async def users(self) -> list[dict[str, Any]]:
        return await self.world.rows("SELECT zuid, zgid, email FROM users ORDER BY zuid")


ZohoFactory = Callable[..., Awaitable[Zoho]]


@pytest.fixture
def make_zoho(
    make_world: Callable[..., Awaitable[PageWorld]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> ZohoFactory:
    """The page world in zoho mode beside a simulated Zoho Accounts; ``oidc`` overrides
    ``[landing.oidc]``, ``landing`` the rest of ``[landing]``, ``sections`` other sections."""

    async def start(
        landing: dict[str, Any] | None = None, sections: dict[str, Any] | None = None, **oidc: Any
    ) -> Zoho:
        accounts = AccountsSimulator(
            OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, [OWNER, OTHER, UNVERIFIED, NO_ORG]
        )
        server = await aiohttp_server(accounts.app())
        accounts.origin = str(server.make_url("")).rstrip("/")
        world = await make_world(
            landing={
                "verify": "zoho",
                "oidc": {
                    "client_id": OIDC_CLIENT_ID,
                    "client_secret": OIDC_CLIENT_SECRET,
                    "accounts_url": accounts.origin,
                    "org_url": f"{accounts.origin}/crm/v2/org",
                    "request_timeout_seconds": 2.0,
                    **oidc,
                },
                **(landing or {}),
            },
            **(sections or {}),
        )
        accounts.redirect_uris.add(str(world.broker.make_url("/manage/oidc/callback")))
        accounts.clock = world.clock  # Zoho and the broker agree on the time
        return Zoho(world, accounts, await aiohttp_client(server))

    return start


@pytest.fixture
async def zoho(make_zoho: ZohoFactory) -> Zoho:
    return await make_zoho()


def assert_refused(page: Page, status: int, words: str, browser: Browser) -> None:
    assert page.status == status, page.text
    assert words in page.text
    assert browser.session_cookie() is None, "a refused sign-in must not start a session"
