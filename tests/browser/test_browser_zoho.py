"""Sign in with Zoho in real headless Chromium: the landing page sends the browser to the
simulated Zoho Accounts, the user presses Accept, and the Manage Subscription page opens as the
user the ID token names. Screenshots go to ``test-artifacts/browser/`` like the other browser
tests; the skip rules are theirs (skipped without Chromium, failing instead under CI).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from broker.app import create_app
from broker.simulators.accounts import AccountsSimulator, SimUser
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import store_key
from tests.conftest import fast_settings
from tests.support.basics import EMAIL, ZAPIKEY, ZGID, ZUID
from tests.support.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    MISSING,
    pw,
    serve_app,
)

OWNER = SimUser(zuid=ZUID, email=EMAIL, name="Ada Owner", zgid=ZGID)  # Zoho's org API says so
OTHER = SimUser(zuid="60000000002", email="mallory@other.example", name="Mallory Other")

pytestmark = BROWSER_MARKS


@dataclass
class ZohoStack:
    broker: web.Application
    origin: str
    accounts_origin: str
    page: Any
    name: str
    shots: int = 0

    async def shot(self, step: str) -> None:
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{step}.png"
        await self.page.screenshot(path=str(path), full_page=True)


@pytest.fixture
async def zoho_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ZohoStack]:
    if MISSING is not None:
        pytest.fail(f"CI is set, so the browser tests must run, but this machine lacks {MISSING}")
    runners: list[web.AppRunner] = []
    broker_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    broker_sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{broker_sock.getsockname()[1]}"
    try:
        platform_origin = await serve_app(PlatformSimulator(ZAPIKEY).app(), runners)
        accounts = AccountsSimulator("1000.BROWSERZOHO", "browser-oidc-secret", [OWNER, OTHER])
        accounts.redirect_uris.add(f"{origin}/manage/oidc/callback")
        accounts.origin = await serve_app(accounts.app(), runners)
        settings = fast_settings(
            tmp_path,
            platform_origin,
            landing={
                "public_url": origin,
                "verify": "zoho",
                "oidc": {
                    "client_id": "1000.BROWSERZOHO",
                    "client_secret": "browser-oidc-secret",
                    "accounts_url": accounts.origin,
                    "org_url": f"{accounts.origin}/crm/v2/org",
                },
            },
        )
        broker = create_app(settings)
        await serve_app(broker, runners, sock=broker_sock)
        async with pw.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(viewport=DESKTOP)).new_page()
                page.set_default_timeout(10_000)
                pw.expect.set_options(timeout=10_000)
                name = request.node.name.removeprefix("test_")
                yield ZohoStack(broker, origin, accounts.origin, page, name)
            finally:
                await browser.close()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        broker_sock.close()


async def test_sign_in_with_zoho_opens_the_page_as_the_token_user(zoho_stack: ZohoStack):
    page, expect = zoho_stack.page, pw.expect
    # The browser claims another user; only the zgid is taken from it (as a hint).
    claims = {"zuid": OTHER.zuid, "zgid": ZGID, "display_name": "Claimed Name"}
    await page.goto(f"{zoho_stack.origin}/manage?{urlencode(claims)}")
    auth = re.compile(rf"^{re.escape(zoho_stack.accounts_origin)}/oauth/v2/auth\?")
    await expect(page).to_have_url(auth)
    await expect(page.locator("h1")).to_have_text("Sign in to Zoho (simulated)")
    await zoho_stack.shot("zoho-sign-in")

    await page.get_by_role("button", name=f"Accept as Ada Owner ({EMAIL})").click()
    await expect(page).to_have_url(f"{zoho_stack.origin}/manage")
    await expect(page.locator("h1")).to_have_text("Your subscription")
    await expect(page.locator("header")).to_contain_text("Ada Owner")
    await zoho_stack.shot("signed-in")
    users = await zoho_stack.broker[store_key].read(
        lambda db: list(db.select_all("SELECT zuid, zgid, email FROM users"))
    )
    assert users == [{"zuid": ZUID, "zgid": ZGID, "email": EMAIL}]


async def test_denying_sign_in_shows_a_clear_page_and_no_session(zoho_stack: ZohoStack):
    page, expect = zoho_stack.page, pw.expect
    await page.goto(f"{zoho_stack.origin}/manage?zgid={ZGID}")
    await page.get_by_role("button", name="Deny").click()
    await expect(page.locator("main")).to_contain_text("you declined to share your Zoho identity")
    await zoho_stack.shot("declined")
    cookies = await page.context.cookies()
    assert [c["name"] for c in cookies if c["name"] == "broker_session"] == []
