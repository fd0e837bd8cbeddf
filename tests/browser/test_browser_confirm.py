"""The confirmation pages of changes that skip checkout, and of cancelling, in real headless
Chromium at desktop (1280 px) and phone (390 px) width: each names what changes and the money,
fits without scrolling sideways, and is saved as ``test-artifacts/browser/confirm-<kind>-<px>.png``
(gitignored) for a person to look at. Skipped without Chromium and playwright, as
tests/browser/test_browser.py explains.

Professional is 20.00 a user a month or 200.00 a year; Standard 10.00 / 100.00 (USD). Bought on
2026-06-10, looked at on 2026-06-20: 20 of the 30 days of the monthly term are left.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any
from urllib.parse import urlencode

import pytest

from broker.simulators.billing.inputs import PlanInput, SubscriptionChangeInput
from tests.support.basics import link_signature
from tests.support.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    missing_requirements,
    no_horizontal_scroll,
    pw,
)
from tests.support.pages import PROFESSIONAL, STANDARD, PageWorld, WorldFactory, visitor

pytestmark = pytest.mark.browser
WIDTHS = {1280: {"width": 1280, "height": 800}, 390: {"width": 390, "height": 844}}
DAY = 86_400.0


@pytest.fixture(autouse=True)
def _requirements() -> None:
    missing = missing_requirements()
    if missing and not os.environ.get("CI"):
        pytest.skip(missing)


async def _shot(page: Any, kind: str, width: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await no_horizontal_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / f"confirm-{kind}-{width}.png"), full_page=True)


def _link(world: PageWorld) -> str:
    pairs = list(visitor().items())
    pairs += link_signature(pairs, now=world.clock())
    return f"{str(world.broker.make_url('')).rstrip('/')}/manage?{urlencode(pairs)}"


@pytest.mark.parametrize("width", sorted(WIDTHS))
async def test_confirmation_pages_show_the_money_and_read_well(
    make_world: WorldFactory, width: int
):
    world = await make_world(billing={"read_cache_seconds": 0})
    owner = await world.signed_in()
    live = await world.subscribed(owner, planid=PROFESSIONAL, users=5)  # 100.00 a month
    world.sim.set_today(date(2026, 6, 20))
    world.clock.advance(10 * DAY)
    origin = str(world.broker.make_url("")).rstrip("/")

    def confirm_url(planid: str, users: int, frequency: str = "monthly") -> str:
        query = {"planid": planid, "frequency": frequency, "users": users, "storage": 0}
        return f"{origin}/manage/change/confirm?{urlencode(query)}"

    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport=WIDTHS[width])).new_page()
            await page.goto(_link(world))

            # Professional 100.00 -> Standard 50.00: 100 x 20/30 = 66.67 unused, 50 x 20/30 =
            # 33.33 for the rest of the term, 66.67 - 33.33 = 33.34 credited.
            await page.goto(confirm_url(STANDARD, 5))
            money = await page.locator("#change-money").inner_text()
            assert "credit note of 33.34 USD" in money
            assert "66.67 USD" in money
            assert "33.33 USD" in money
            await _shot(page, "downgrade", width)

            # Professional 5 -> 3 users (60.00): 66.67 - 40.00 = 26.67 credited.
            await page.goto(confirm_url(PROFESSIONAL, 3))
            assert "credit note of 26.67 USD" in await page.locator("#change-money").inner_text()
            await _shot(page, "fewer-users", width)

            await page.goto(f"{origin}/manage/cancel")
            assert "66.67 USD" in await page.locator("#cancel-now-money").inner_text()
            await _shot(page, "cancel", width)

            # Billing moves it to Professional yearly (1,000.00 a year, term June 20 onwards);
            # then 2 users monthly (40.00 a month) is plainly cheaper and skips checkout.
            yearly = PlanInput(plan_code="testapp_1002_Y", quantity=5)
            world.sim.state.change(live, SubscriptionChangeInput(plan=yearly))
            await world.settle()
            await page.goto(confirm_url(PROFESSIONAL, 2))
            text = await page.locator("#change-money").inner_text()
            assert "first billing period" in text, text
            await _shot(page, "cycle", width)
            await page.locator("#change-confirm").click()
            assert world.sim.subscriptions[live].quantity == 2
        finally:
            await browser.close()
