"""The conflict in real headless Chromium, at desktop (1280 px) and phone (390 px) width: the
page with the duplicate's own cancel button, its confirmation page, and the console's org view.
Each is saved as a screenshot under ``test-artifacts/browser/`` (gitignored) for a person to look
at, and checked not to scroll sideways. Skipped without Chromium and playwright, as
tests/browser/test_browser.py explains."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.basics import link_signature
from tests.support.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    missing_requirements,
    no_horizontal_scroll,
    pw,
)
from tests.support.ops import OPS, PASSWORD
from tests.support.pages import (
    OWNER_ZGID,
    WorldFactory,
    visitor,
)

pytestmark = pytest.mark.browser
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(autouse=True)
def _requirements() -> None:
    missing = missing_requirements()
    if missing and not os.environ.get("CI"):
        pytest.skip(missing)


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await no_horizontal_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / f"conflict-{name}.png"), full_page=True)


@pytest.mark.parametrize("width", sorted(WIDTHS))
async def test_conflict_page_confirmation_and_org_view_read_well(
    make_world: WorldFactory, width: str
):
    world = await make_world(billing={"read_cache_seconds": 0}, ops=OPS)
    owner = await world.signed_in()
    kept, duplicate = await world.bought_twice(owner)
    origin = str(world.broker.make_url("")).rstrip("/")
    pairs = list(visitor().items())
    pairs += link_signature(pairs, now=world.clock())

    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=WIDTHS[width])
            page = await context.new_page()
            await page.goto(f"{origin}/manage?{urlencode(pairs)}")
            button = page.locator(f"#cancel-duplicate-{duplicate}")
            assert await button.inner_text() == f"Cancel the duplicate (subscription {duplicate})"
            await _shot(page, f"page-{width}")
            await button.click()
            heading = await page.locator("h1").inner_text()
            assert heading == "Cancel the duplicate subscription"
            assert kept in await page.locator("dl").inner_text()
            await _shot(page, f"confirm-{width}")
            await page.goto(f"{origin}/ops/login")
            await page.fill("input[name=password]", PASSWORD)
            await page.locator("button[type=submit]").click()
            await page.goto(f"{origin}/ops/orgs/{OWNER_ZGID}")
            assert duplicate in await page.locator("main").inner_text()
            await _shot(page, f"ops-org-{width}")
        finally:
            await browser.close()


@pytest.mark.parametrize("width", sorted(WIDTHS))
async def test_ops_org_view_resolve_action_reads_well_and_cancels_the_duplicate(
    make_world: WorldFactory, width: str
):
    world = await make_world(billing={"read_cache_seconds": 0}, ops=OPS)
    owner = await world.signed_in()
    kept, duplicate = await world.bought_twice(owner)
    origin = str(world.broker.make_url("")).rstrip("/")
    pixels = WIDTHS[width]["width"]

    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=WIDTHS[width])
            page = await context.new_page()
            await page.goto(f"{origin}/ops/login")
            await page.fill("input[name=password]", PASSWORD)
            await page.locator("button[type=submit]").click()
            await page.goto(f"{origin}/ops/orgs/{OWNER_ZGID}")
            resolve = page.locator(f"#resolve-{duplicate}")
            assert await resolve.inner_text() == "Resolve: cancel this duplicate"
            assert await page.locator(f"#resolve-{kept}").count() == 0
            await _shot(page, f"ops-org-resolve-{pixels}")
            await resolve.click()
            assert kept in await page.locator("dl").inner_text()
            await page.check("#confirm")
            await _shot(page, f"ops-org-resolve-confirm-{pixels}")
            await page.locator("#cancel-duplicate-confirm").click()
            notice = await page.locator("p.notice").inner_text()
            assert notice.startswith(f"Duplicate subscription {duplicate} was cancelled")
            await _shot(page, f"ops-org-resolved-{pixels}")
        finally:
            await browser.close()
    await world.settle()
    assert world.sim.subscriptions[duplicate].status == "cancelled"
    assert [(c.method, c.body["subscription_id"]) for c in world.calls()] == [("POST", kept)]
