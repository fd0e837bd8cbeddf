"""Real headless Chromium for the browser tests (tests/browser): Playwright driving Debian's
Chromium (``/usr/bin/chromium``; Playwright's own browser download is never used), the marks that
skip the tests without them (or fail them under CI), serving an aiohttp app on 127.0.0.1, and the
three servers of the Manage Subscription page tests (``Stack``: the broker, the simulated Zoho
Billing and the simulated Developer Console) with a browser page on them.

Screenshots go under ``test-artifacts/browser/`` (gitignored), for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from broker.simulators.billing import BillingSimulator, Subscription
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import store_key
from tests.support.basics import (
    APP_DOMAIN,
    EMAIL,
    STORAGE_MONTHLY,
    ZAPIKEY,
    ZGID,
    ZUID,
    eventually,
    link_signature,
)
from tests.support.pages import RunningClock

try:
    from playwright import async_api as pw
except ImportError:
    pw = None  # type: ignore[assignment]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 390, "height": 844}
PROFESSIONAL = "1002"
CLIENT_SECRET = "browser-test-client-secret"
REFRESH_TOKEN = "1000.browser-test-refresh-token"


def missing_requirements() -> str | None:
    missing = []
    if pw is None:
        missing.append("the playwright Python package (pip install 'playwright>=1.50')")
    if CHROMIUM is None:
        missing.append("Chromium at /usr/bin/chromium (apt-get install chromium)")
    return " and ".join(missing) or None


MISSING = missing_requirements()
IN_CI = bool(os.environ.get("CI"))

# Every browser test module's marks: each sets ``pytestmark = BROWSER_MARKS``.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        MISSING is not None and not IN_CI,
        reason=f"browser tests need {MISSING} (they fail instead when CI is set)",
    ),
]


# The broker's clock runs from noon UTC on the billing simulator's fixed "today", so the two
# agree on the date whatever the wall clock says (no test fails near midnight).
TODAY = date(2026, 6, 10)


# -- the three servers and the browser --------------------------------------------------------


@dataclass
class Stack:
    platform: PlatformSimulator
    billing: BillingSimulator
    broker: web.Application
    origin: str
    billing_origin: str
    browser: Any
    page: Any
    test_name: str
    clock: RunningClock
    shots: int = 0

    def landing_url(self, *, sign: bool = True) -> str:
        """What the Vertical Solution opens: the user's details in the query string, signed with
        a fresh ts and nonce, on the broker's clock."""
        params = {
            "zuid": ZUID,
            "zgid": ZGID,
            "email": EMAIL,
            "first_name": "Ada",
            "last_name": "Owner",
            "display_name": "Ada Owner",
            "company_name": "Example Org",
        }
        pairs = list(params.items())
        if sign:
            pairs += link_signature(pairs, now=self.clock())
        return f"{self.origin}/manage?{urlencode(pairs)}"

    async def shot(self, step: str) -> None:
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.test_name}-{self.shots:02d}-{step}.png"
        await self.page.screenshot(path=str(path), full_page=True)

    async def use_phone(self) -> None:
        """From now on, a phone-sized touch screen (the session cookie is not carried over)."""
        await self.page.context.close()
        context = await self.browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
        )
        self.page = await context.new_page()

    async def settled(self) -> None:
        """Every billing webhook was answered and every platform delivery finished: after this,
        a call the platform did not record is a call the broker will not make."""
        await self.billing.wait_until(
            lambda b: (
                len(b.webhook_deliveries) == len(b.events)
                and all(d.state not in ("queued", "held") for d in b.webhook_deliveries)
            ),
            timeout=10,
        )
        refused = [d for d in self.billing.webhook_deliveries if d.state != "delivered"]
        assert not refused, f"the broker did not take these webhooks: {refused}"

        async def deliveries_finished() -> bool:
            rows = await self.broker[store_key].read(
                lambda db: list(db.select_all("SELECT state FROM deliveries"))
            )
            return all(row["state"] in ("done", "superseded") for row in rows)

        await eventually(deliveries_finished, within=10, message="every delivery finished")

    def only_subscription(self) -> Subscription:
        assert len(self.billing.subscriptions) == 1, self.billing.subscriptions
        return next(iter(self.billing.subscriptions.values()))

    async def live_subscription(self, *, users: int = 5, storage: int = 2) -> Subscription:
        """Professional monthly, bought as if through a checkout (webhook and Add included)."""
        sub = self.billing.subscribe(
            f"{APP_DOMAIN}_{PROFESSIONAL}",
            quantity=users,
            addons={STORAGE_MONTHLY: storage} if storage else None,
            display_name="Example Org",
            email=EMAIL,
            zuid=ZUID,
            zgid=ZGID,
        )
        await self.settled()
        assert summary(self.platform) == [("POST", PROFESSIONAL, str(users), "1", str(storage))]
        return sub

    async def enter(self) -> None:
        """Open the page from the app, as the org's billing owner."""
        await self.page.goto(self.landing_url())
        await pw.expect(self.page).to_have_url(f"{self.origin}/manage")


async def serve_app(app: web.Application, runners: list[web.AppRunner], sock: Any = None) -> str:
    """Serve ``app`` on 127.0.0.1 (on ``sock`` if given, else a free port); the caller cleans up
    ``runners``. Every browser test module starts its simulators and broker with it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    runners.append(runner)
    site = web.SockSite(runner, sock) if sock else web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def billing_posting_to(origin: str) -> BillingSimulator:
    """The simulated billing of the browser tests, posting its webhooks to the broker at
    ``origin``."""
    return BillingSimulator(
        app_domain=APP_DOMAIN,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        webhook_url=f"{origin}/webhooks/billing",
        webhook_zapikey=ZAPIKEY,
        today=TODAY,
    )


def summary(platform: PlatformSimulator) -> list[tuple[str, ...]]:
    """Every call the platform received, as (method, planid, users, frequency, storage)."""
    assert platform.calls == platform.applied, "a platform call was not applied"
    for call in platform.calls:
        assert call.zgid == ZGID
        assert call.body is not None
        assert call.body["zuid"] == ZUID
    return [
        (call.method, call.planid)
        if call.method == "DELETE"
        else (
            call.method,
            call.planid,
            call.body["no_of_users"],
            call.body["frequency"],
            call.body["storage_units"],
        )
        for call in platform.calls
        if call.body is not None
    ]


async def no_horizontal_scroll(page: Any) -> None:
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths}"
