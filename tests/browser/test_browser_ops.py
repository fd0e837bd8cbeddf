"""The operator console in real headless Chromium: sign in, find the dead letter, retry it,
and see the Developer Console simulator receive the call; the same console at phone width.
Screenshots go to ``test-artifacts/browser/ops-*.png`` (gitignored), for a person to look at."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broker.app import create_app
from broker.simulators.platform import PlatformSimulator
from tests.conftest import fast_settings
from tests.support.basics import ZAPIKEY, ZGID, eventually, subscription_event
from tests.support.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    MISSING,
    PHONE,
    pw,
    serve_app,
)
from tests.support.ops import OPS, PASSWORD

pytestmark = BROWSER_MARKS


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"ops-{name}.png"), full_page=True)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[str, PlatformSimulator, Any]]:
    if MISSING is not None:
        pytest.fail(f"CI is set, so the browser tests must run, but this machine lacks {MISSING}")
    runners: list[web.AppRunner] = []
    try:
        platform = PlatformSimulator(ZAPIKEY)
        platform_origin = await serve_app(platform.app(), runners)
        origin = await serve_app(
            create_app(fast_settings(tmp_path, platform_origin, ops=OPS)), runners
        )
        async with pw.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield origin, platform, browser
            finally:
                await browser.close()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def sign_in(browser: Any, origin: str, **context: Any) -> Any:
    page = await (await browser.new_context(**context)).new_page()
    page.set_default_timeout(10_000)
    await page.goto(f"{origin}/ops")
    await pw.expect(page).to_have_url(f"{origin}/ops/login")
    await page.fill("#password", PASSWORD)
    await page.click("text=Sign in")
    await pw.expect(page).to_have_url(f"{origin}/ops")
    return page


async def test_operator_signs_in_finds_the_dead_letter_and_retries_it(console):
    origin, platform, browser = console
    platform.fail_next(1, status=400)
    async with aiohttp.ClientSession() as http:
        answer = await http.post(
            f"{origin}/webhooks/billing",
            data=json.dumps(subscription_event()),
            headers={"zapikey": ZAPIKEY, "Content-Type": "application/json"},
        )
        assert answer.status == 200

    page = await sign_in(browser, origin, viewport=DESKTOP)
    await shot(page, "01-overview")
    await page.click("nav >> text=Dead letters")

    async def dead_listed() -> bool:
        await page.reload()
        return await page.locator("td button:has-text('Retry')").count() == 1

    await eventually(dead_listed, message="the dead letter is listed")
    await pw.expect(page.locator("td.error-text")).to_contain_text("INVALID_DATA")
    await shot(page, "02-dead-letters")
    await page.locator("td button:has-text('Retry')").click()
    await pw.expect(page.locator(".notice")).to_contain_text("requeued 1")
    await eventually(lambda: platform.subscriptions.get(ZGID) is not None, message="Add applied")
    assert [call.status for call in platform.calls] == [400, 200]
    await shot(page, "03-retried")

    phone = await sign_in(browser, origin, viewport=PHONE, is_mobile=True, has_touch=True)
    await phone.goto(f"{origin}/ops/deliveries")
    await pw.expect(phone.locator("td .pill")).to_have_text("done")
    # The page itself never scrolls sideways at 390 px; only the table inside its box does.
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    await shot(phone, "04-deliveries-phone")
    await phone.goto(f"{origin}/ops/subscriptions/100000000000000001")
    await pw.expect(phone.locator("ol.timeline")).to_contain_text("ops.retry_dead")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await shot(phone, "05-story-phone")
