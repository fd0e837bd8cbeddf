"""Every console action in real headless Chromium, against the billing and Developer Console
simulators: retry all matching dead letters, retry-now, resolve a parked subscription after
its confirmation page, replay one event and a range, reconcile now; refused webhooks counted on
the events page. Each page is shot at 1280 px and at 390 px (``test-artifacts/browser/
ops-actions-*.png``), and never scrolls sideways at phone width."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.support.basics import ZAPIKEY, ZGID, eventually, subscription_event
from tests.support.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_ARGS,
    MISSING,
    PHONE,
    pw,
)
from tests.support.ops import OPS, PASSWORD
from tests.support.pages import STANDARD_CODE, PageWorld, WorldFactory

pytestmark = BROWSER_MARKS
WIDE = {"width": 1280, "height": 900}
DEAD_A, DEAD_B, SLOW, PARKED = (f"10000000000000010{n}" for n in range(4))


async def shots(page: Any, phone: Any, name: str, path: str | None = None) -> None:
    """The same page at both widths; the phone's never wider than its screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"ops-actions-{name}-1280.png"), full_page=True)
    await phone.goto(path or page.url)
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    await phone.screenshot(path=str(ARTIFACTS / f"ops-actions-{name}-390.png"), full_page=True)


async def sign_in(browser: Any, origin: str, **context: Any) -> Any:
    page = await (await browser.new_context(**context)).new_page()
    page.set_default_timeout(10_000)
    await page.goto(f"{origin}/ops/login")
    await page.fill("#password", PASSWORD)
    await page.click("text=Sign in")
    await pw.expect(page).to_have_url(f"{origin}/ops")
    return page


async def post(origin: str, payload: dict[str, Any] | bytes, key: str = ZAPIKEY) -> int:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"zapikey": key, "Content-Type": "application/json"}
    url = f"{origin}/webhooks/billing"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as answer,
    ):
        return answer.status


async def states(world: PageWorld, sid: str) -> list[str]:
    found = await world.rows(
        "SELECT state FROM deliveries WHERE subscription_id = ? ORDER BY id", [sid]
    )
    return [row["state"] for row in found]


async def prepare(world: PageWorld, origin: str) -> None:
    """Two dead letters, a delivery waiting out an hour's backoff, a parked subscription, and
    refused requests."""
    world.platform.fail_next(2, status=400)
    for n, sid in enumerate((DEAD_A, DEAD_B)):
        event = subscription_event(
            subscription_id=sid, zgid=f"7000000010{n}", customer_id=f"90000000000000010{n}"
        )
        assert await post(origin, event) == 200
        await eventually(lambda s=sid: states(world, s), message="queued")
    for sid in (DEAD_A, DEAD_B):

        async def dead(s: str = sid) -> bool:
            return await states(world, s) == ["dead"]

        await eventually(dead, message=f"{sid} dead")
    world.platform.fail_next(1, status=503)
    slow = subscription_event(subscription_id=SLOW, zgid=ZGID, event_id="9601")
    assert await post(origin, slow) == 200

    async def waiting() -> bool:
        found = await world.rows(
            "SELECT attempts, state FROM deliveries WHERE subscription_id = ?", [SLOW]
        )
        return [(r["attempts"], r["state"]) for r in found] == [(1, "pending")]

    await eventually(waiting, message="the slow delivery failed once and waits")
    parked = subscription_event(
        subscription_id=PARKED, zuid=None, zgid=None, customer_id="900000000000000199"
    )
    assert await post(origin, parked) == 200
    for key in ("wrong", "also-wrong", ""):
        assert await post(origin, subscription_event(), key=key) == 401


@pytest.fixture
async def world_and_browser(make_world: WorldFactory) -> Any:
    if MISSING is not None:
        pytest.fail(f"CI is set, so the browser tests must run, but this machine lacks {MISSING}")
    world = await make_world(
        ops=OPS, delivery={"initial_backoff_seconds": 3600.0, "max_backoff_seconds": 3600.0}
    )
    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield world, browser
        finally:
            await browser.close()


async def test_every_console_action_in_chromium_at_desktop_and_phone_width(world_and_browser):
    world, browser = world_and_browser
    origin = str(world.broker.make_url("")).rstrip("/")
    await prepare(world, origin)
    page = await sign_in(browser, origin, viewport=WIDE)
    phone = await sign_in(browser, origin, viewport=PHONE, is_mobile=True, has_touch=True)
    await shots(page, phone, "01-overview")

    # Refused requests, counted by reason on the events page.
    await page.goto(f"{origin}/ops/events")
    await pw.expect(page.locator(".refused-zapikey")).to_have_text("3")
    await shots(page, phone, "02-events-refused")

    # Retry all matching: both dead letters, from the filtered list.
    await page.goto(f"{origin}/ops/deliveries?state=dead")
    await shots(page, phone, "03-dead-letters")
    await page.click("text=Retry every dead letter")
    await pw.expect(page.locator(".notice")).to_contain_text("requeued 2")
    for sid in (DEAD_A, DEAD_B):

        async def done(s: str = sid) -> bool:
            return (await states(world, s))[-1] == "done"

        await eventually(done, message=f"{sid} redelivered")
    await shots(page, phone, "04-retried-all")

    # Retry now: the delivery waiting out its hour is sent at once.
    await page.goto(f"{origin}/ops/deliveries?state=pending")
    await shots(page, phone, "05-pending")
    await page.locator("td button:has-text('now')").click()
    await pw.expect(page.locator(".notice")).to_contain_text("is due now")
    await eventually(lambda: world.platform.subscriptions.get(ZGID) is not None, message="sent")

    # Resolve a parked subscription, through its confirmation page (at phone width).
    await phone.goto(f"{origin}/ops/parked")
    await phone.click("text=Resolve")
    await phone.fill("#zgid", "70000000199")
    await phone.fill("#zuid", "60000000199")
    await phone.click("text=Continue")
    await pw.expect(phone.locator(".warning")).to_contain_text("70000000199")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await phone.screenshot(path=str(ARTIFACTS / "ops-actions-06-resolve-confirm-390.png"))
    await phone.click("text=Yes, resolve it")
    await pw.expect(phone.locator("ol.timeline")).to_contain_text("ops.resolve_parked")
    await eventually(lambda: "70000000199" in world.platform.subscriptions, message="resolved")
    await page.goto(phone.url)
    await shots(page, phone, "07-resolved-story")

    # Replay one event: a delivery is queued again (the platform acknowledged this state, so
    # the worker finishes it without a call).
    await page.goto(f"{origin}/ops/events/9601")
    await shots(page, phone, "08-event")
    await page.click("text=Replay this event")
    await pw.expect(page.locator(".notice")).to_contain_text("replayed: queued")

    async def replayed() -> bool:
        found = await world.rows("SELECT state FROM deliveries WHERE cause = 'replay:9601'")
        return [r["state"] for r in found] == ["done"]

    await eventually(replayed, message="the replayed delivery finished")

    # Replay a range: a confirmation page first.
    day = datetime.fromtimestamp(world.clock(), UTC).date().isoformat()
    await page.goto(f"{origin}/ops/events?since={day}&until={day}")
    await page.click("text=Replay every event in this range")
    await pw.expect(page.locator(".warning")).to_contain_text("through the pipeline again")
    await shots(page, phone, "09-replay-confirm")
    await page.click("text=Yes, replay")
    await pw.expect(page.locator(".notice")).to_contain_text("replayed 4 events: queued 4")
    await shots(page, phone, "10-replay-audit")

    # Reconcile now: a subscription whose webhook billing never delivered is found.
    world.sim.drop_all_webhooks()
    missed = world.sim.subscribe(STANDARD_CODE, quantity=3, zuid="61000000009", zgid="71000000009")
    await page.goto(f"{origin}/ops/reconcile")
    await shots(page, phone, "11-reconcile")
    await page.click("text=Reconcile now")
    # The missed one, and the four this test made by webhook alone (two dead letters, the slow
    # one, the parked one): billing has never heard of those, so each is missing_in_billing,
    # waiting for the operator (reconcile.on_missing_in_billing = "ask"): nothing queued.
    await pw.expect(page.locator(".notice")).to_contain_text(
        "done: 5 drift found, 1 deliveries queued"
    )
    await pw.expect(page.locator("table")).to_contain_text(missed.subscription_id)
    for held_only_here in (DEAD_A, DEAD_B, SLOW, PARKED):
        await pw.expect(page.locator("table")).to_contain_text(held_only_here)
    await shots(page, phone, "12-run-drift")
    await page.goto(f"{origin}/ops/audit")
    await pw.expect(page.locator("table")).to_contain_text("ops.reconcile")
    await shots(page, phone, "13-audit")
