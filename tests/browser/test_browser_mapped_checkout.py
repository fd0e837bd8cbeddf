"""In real headless Chromium: a vendor who mapped Zoho's hosted pages to its own domain names that
domain in ``billing.extra_checkout_origins``, and the page's Content-Security-Policy then lets the
plan form go on to the checkout there; without the setting the browser refuses to.

The "mapped domain" is ``localhost`` on the billing simulator's port while the API is reached at
``127.0.0.1``: another origin to the browser, the same loopback server. Same requirements and skip
rules as ``test_browser.py``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from broker.app import create_app
from broker.simulators.platform import PlatformSimulator
from tests.conftest import fast_settings
from tests.support.basics import ZAPIKEY, ZGID, ZUID
from tests.support.browser import (
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_ARGS,
    CLIENT_SECRET,
    DESKTOP,
    MISSING,
    PROFESSIONAL,
    REFRESH_TOKEN,
    TODAY,
    Stack,
    billing_posting_to,
    pw,
    serve_app,
)
from tests.support.pages import running_clock

pytestmark = BROWSER_MARKS


@dataclass
class Mapped:
    stack: Stack
    mapped_origin: str
    csp_refusals: list[str]


async def _mapped_stack(
    request: pytest.FixtureRequest, tmp_path: Path, *, allow_mapped: bool
) -> AsyncIterator[Mapped]:
    if MISSING is not None:
        pytest.fail(f"CI is set, so the browser tests must run, but this machine lacks {MISSING}")
    runners: list[web.AppRunner] = []
    broker_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    broker_sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{broker_sock.getsockname()[1]}"
    try:
        platform = PlatformSimulator(ZAPIKEY)
        platform_origin = await serve_app(platform.app(), runners)
        billing = billing_posting_to(origin)
        billing_origin = await serve_app(billing.app(), runners)
        mapped_origin = billing_origin.replace("127.0.0.1", "localhost")
        billing.map_hosted_pages(mapped_origin)
        billing_section: dict[str, Any] = {
            "base_url": f"{billing_origin}/billing/v1",
            "accounts_url": billing_origin,
            "organization_id": billing.organization_id,
            "client_id": "1000.SIMCLIENT",
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "initial_backoff_seconds": 0.01,
            "max_backoff_seconds": 0.05,
        }
        if allow_mapped:
            billing_section["extra_checkout_origins"] = [mapped_origin]
        settings = fast_settings(
            tmp_path, platform_origin, billing=billing_section, landing={"public_url": origin}
        )
        clock = running_clock(TODAY)
        broker = create_app(settings, clock=clock)
        await serve_app(broker, runners, sock=broker_sock)
        async with pw.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(viewport=DESKTOP)).new_page()
                page.set_default_timeout(10_000)
                pw.expect.set_options(timeout=10_000)
                refusals: list[str] = []
                page.on(
                    "console",
                    lambda message: (
                        refusals.append(message.text)
                        if "Content Security Policy" in message.text
                        else None
                    ),
                )
                name = request.node.name.removeprefix("test_")
                stack = Stack(
                    platform, billing, broker, origin, billing_origin, browser, page, name, clock
                )
                yield Mapped(stack, mapped_origin, refusals)
            finally:
                await browser.close()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        broker_sock.close()


@pytest.fixture
async def allowed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mapped]:
    async for mapped in _mapped_stack(request, tmp_path, allow_mapped=True):
        yield mapped


@pytest.fixture
async def not_allowed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mapped]:
    async for mapped in _mapped_stack(request, tmp_path, allow_mapped=False):
        yield mapped


async def fill_plan_form(stack: Stack) -> None:
    page = stack.page
    await stack.enter()
    await page.get_by_role("link", name="Choose a plan").click()
    await page.check(f"input[name=planid][value='{PROFESSIONAL}']")
    await page.check("input[name=frequency][value=monthly]")
    await page.fill("#users", "3")
    await page.fill("#storage", "0")


async def test_checkout_on_a_mapped_domain_completes_when_the_setting_names_it(allowed: Mapped):
    stack, page, expect = allowed.stack, allowed.stack.page, pw.expect
    await fill_plan_form(stack)
    await page.click("#continue")
    await expect(page).to_have_url(
        re.compile(rf"^{re.escape(allowed.mapped_origin)}/hostedpages/\d+/checkout$")
    )
    await stack.shot("mapped-checkout")

    await page.click("#pay")
    await expect(page).to_have_url(f"{stack.origin}/manage")
    await pw.expect(page.locator("main")).to_contain_text("Thank you: your subscription is active.")
    await stack.settled()
    await stack.shot("paid")
    [add] = stack.platform.calls
    assert (add.method, add.zgid, add.body["zuid"] if add.body else None) == ("POST", ZGID, ZUID)
    assert allowed.csp_refusals == []
    # The return also put both ids on the billing customer, where the documents keep them.
    customer = stack.only_subscription().customer
    assert {f.label: f.value for f in customer.custom_fields} == {"zuid": ZUID, "zgid": ZGID}


async def test_checkout_on_a_mapped_domain_is_blocked_without_the_setting(not_allowed: Mapped):
    stack, page = not_allowed.stack, not_allowed.stack.page
    await fill_plan_form(stack)

    # Chromium refuses the redirect to the mapped domain and says why on the console.
    refusal = page.expect_console_message(lambda message: "form-action" in message.text)
    async with refusal as console:
        await page.click("#continue")
    text = (await console.value).text
    assert f"form-action 'self' {stack.billing_origin}\"" in text  # the mapped domain is not in it
    assert page.url.startswith(stack.origin)
    assert stack.billing.hosted_pages  # the broker opened the checkout; the browser stopped
    assert all(p.status == "fresh" for p in stack.billing.hosted_pages.values())
    assert stack.platform.calls == []
