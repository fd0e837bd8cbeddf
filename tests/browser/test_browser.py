"""End to end in real headless Chromium: the Manage Subscription page, the simulated Zoho Billing
checkout and the simulated Developer Console, all three served for real on 127.0.0.1.

Each step is checked twice: on the page the customer sees, and in the calls the Developer Console
simulator recorded. Each step is also saved as a screenshot under
``test-artifacts/browser/<test>-<step>.png`` (gitignored), for a person to look at.

Needs Debian's Chromium (``/usr/bin/chromium``) and the ``playwright`` package; Playwright's own
browser download is never used. Without them the tests are skipped, unless the ``CI`` environment
variable is set: then they fail, so CI never passes by skipping them.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from broker.app import create_app
from broker.simulators.platform import PlatformSimulator, RecordedCall
from tests.conftest import fast_settings
from tests.support.basics import ZAPIKEY, ZUID
from tests.support.browser import (
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_ARGS,
    CLIENT_SECRET,
    DESKTOP,
    MISSING,
    PHONE,
    PROFESSIONAL,
    REFRESH_TOKEN,
    TODAY,
    Stack,
    billing_posting_to,
    no_horizontal_scroll,
    pw,
    serve_app,
    summary,
)
from tests.support.pages import running_clock

ADD_FIELDS = ("zuid", "no_of_users", "frequency", "subscription_id", "storage_units")
pytestmark = BROWSER_MARKS


# -- the three servers and the browser --------------------------------------------------------


@pytest.fixture
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    if MISSING is not None:
        pytest.fail(f"CI is set, so the browser tests must run, but this machine lacks {MISSING}")
    runners: list[web.AppRunner] = []
    # The broker's socket is bound first, so billing knows where to post its webhooks.
    broker_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    broker_sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{broker_sock.getsockname()[1]}"
    try:
        platform = PlatformSimulator(ZAPIKEY)
        platform_origin = await serve_app(platform.app(), runners)
        billing = billing_posting_to(origin)
        billing_origin = await serve_app(billing.app(), runners)
        landing_param = dict(getattr(request, "param", {}))
        plans_param = landing_param.pop("plans", {})
        settings = fast_settings(
            tmp_path,
            platform_origin,
            billing={
                "base_url": f"{billing_origin}/billing/v1",
                "accounts_url": billing_origin,
                "organization_id": billing.organization_id,
                "client_id": "1000.SIMCLIENT",
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
                "initial_backoff_seconds": 0.01,
                "max_backoff_seconds": 0.05,
            },
            # Indirect parametrisation may change the landing settings (verification modes)
            # and, under "plans", the plans settings (a pause policy).
            landing={"public_url": origin, **landing_param},
            plans=plans_param,
        )
        clock = running_clock(TODAY)
        broker = create_app(settings, clock=clock)
        await serve_app(broker, runners, sock=broker_sock)
        async with pw.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(viewport=DESKTOP)
                page = await context.new_page()
                page.set_default_timeout(10_000)
                pw.expect.set_options(timeout=10_000)
                name = request.node.name.removeprefix("test_")
                yield Stack(
                    platform, billing, broker, origin, billing_origin, browser, page, name, clock
                )
            finally:
                await browser.close()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        broker_sock.close()


# -- reading the page and the platform --------------------------------------------------------


def detail(page: Any, label: str) -> Any:
    """The value next to a label in the subscription card."""
    return page.locator(f"xpath=//dt[normalize-space()='{label}']/following-sibling::dd[1]")


async def expect_overview(
    page: Any,
    *,
    status: str,
    users: int | None = None,
    storage: int | None = None,
    cycle: str | None = None,
    sync: str | None = None,
) -> None:
    expect = pw.expect
    await expect(page.locator("h1")).to_have_text("Your subscription")
    await expect(detail(page, "Status")).to_have_text(re.compile(f"^{status}$", re.I))
    if users is not None:
        await expect(detail(page, "Users")).to_have_text(str(users))
    if storage is not None:
        await expect(detail(page, "Storage")).to_have_text(
            f"{storage} unit{'' if storage == 1 else 's'}"
        )
    if cycle is not None:
        await expect(detail(page, "Billing cycle")).to_have_text(cycle)
    if sync is not None:
        await expect(detail(page, "In the app")).to_have_text(sync)


async def expect_notice(page: Any, text: str) -> None:
    """The action's notice comes first and begins with ``text``; what it says of money follows
    (and billing's own figure may stand in a notice after it)."""
    await pw.expect(page.locator(".notice").first).to_have_text(re.compile(f"^{re.escape(text)}"))


async def reload_settled(stack: Stack) -> None:
    """Wait for the broker to finish with the platform, then look at the page again."""
    await stack.settled()
    await stack.page.reload()


def add_body(call: RecordedCall) -> dict[str, Any]:
    assert call.body is not None
    return {key: call.body.get(key) for key in ADD_FIELDS}


async def open_change_form(stack: Stack) -> None:
    await stack.page.get_by_role("link", name="Change plan, users or storage").click()
    await pw.expect(stack.page.locator("h1")).to_have_text("Change your subscription")


async def expect_checkout(stack: Stack, *lines: str) -> None:
    page = stack.page
    await pw.expect(page).to_have_url(
        re.compile(rf"^{re.escape(stack.billing_origin)}/hostedpages/\d+/checkout$")
    )
    for line in lines:
        await pw.expect(page.locator("table")).to_contain_text(line)


# -- the flows --------------------------------------------------------------------------------


async def test_subscribe_through_checkout_adds_the_subscription_once(stack: Stack):
    page, expect = stack.page, pw.expect
    await page.goto(stack.landing_url())
    await expect(page).to_have_url(f"{stack.origin}/manage")  # the ids left the address bar
    await expect(page.locator("main")).to_contain_text("Your organisation has no subscription yet")
    await stack.shot("landing")

    await page.get_by_role("link", name="Choose a plan").click()
    await expect(page.locator("h1")).to_have_text("Choose a plan")
    await page.check(f"input[name=planid][value='{PROFESSIONAL}']")
    await page.check("input[name=frequency][value=monthly]")
    await page.fill("#users", "5")
    await page.fill("#storage", "2")
    await stack.shot("plan-form")

    await page.click("#continue")
    await expect_checkout(stack, "Professional x 5", "Storage (5 GB) x 2", "$110.00")
    await stack.shot("checkout")
    assert stack.platform.calls == []  # nothing is added before billing takes the payment

    await page.click("#pay")
    await expect(page).to_have_url(f"{stack.origin}/manage")
    await expect_notice(page, "Thank you: your subscription is active.")
    await expect_overview(page, status="live", users=5, storage=2, cycle="Monthly")
    await stack.shot("paid")

    await reload_settled(stack)
    await expect_overview(page, status="live", users=5, storage=2, sync="Up to date")
    await stack.shot("up-to-date")
    sub = stack.only_subscription()
    assert summary(stack.platform) == [("POST", PROFESSIONAL, "5", "1", "2")]
    assert add_body(stack.platform.calls[0]) == {
        "zuid": ZUID,
        "no_of_users": "5",
        "frequency": "1",
        "subscription_id": sub.subscription_id,
        "storage_units": "2",
    }


async def test_upgrade_pays_at_checkout_then_modifies_the_platform_once(stack: Stack):
    """More users on a yearly cycle costs more: checkout first, then one Modify."""
    page, expect = stack.page, pw.expect
    sub = await stack.live_subscription(users=5, storage=2)
    await stack.enter()
    await expect_overview(page, status="live", users=5, storage=2, cycle="Monthly")
    await stack.shot("live")

    await open_change_form(stack)
    # The form starts from what the subscription is now.
    await expect(page.locator(f"input[name=planid][value='{PROFESSIONAL}']")).to_be_checked()
    await expect(page.locator("input[name=frequency][value=monthly]")).to_be_checked()
    await expect(page.locator("#users")).to_have_value("5")
    await expect(page.locator("#storage")).to_have_value("2")
    await page.fill("#users", "8")
    await page.check("input[name=frequency][value=yearly]")
    await stack.shot("change-form")

    await page.click("#continue")
    await expect_checkout(stack, "Professional (yearly) x 8", "$1,700.00")
    await stack.shot("checkout")
    await page.click("#pay")
    await expect_notice(page, "Your subscription was changed.")
    await expect_overview(page, status="live", users=8, storage=2, cycle="Yearly")
    await stack.shot("changed")

    await reload_settled(stack)
    await expect_overview(page, status="live", users=8, cycle="Yearly", sync="Up to date")
    assert summary(stack.platform) == [
        ("POST", PROFESSIONAL, "5", "1", "2"),
        ("PUT", PROFESSIONAL, "8", "4", "2"),
    ]
    assert add_body(stack.platform.calls[1])["subscription_id"] == sub.subscription_id


async def test_downgrade_applies_directly_with_one_modify(stack: Stack):
    """Fewer users costs less: no checkout, billing changes it at once, one Modify follows."""
    page, expect = stack.page, pw.expect
    await stack.live_subscription(users=5, storage=2)
    await stack.enter()
    await open_change_form(stack)
    await page.fill("#users", "3")
    await stack.shot("change-form")

    await page.click("#continue")
    # Money moves without a checkout, so the page shows it first and waits for a confirmation.
    await expect(page.locator("h1")).to_have_text("Confirm the change")
    assert [c for c in stack.platform.calls if c.method == "PUT"] == []  # nothing applied yet
    await page.click("#change-confirm")
    await expect_notice(page, "Your subscription was changed.")
    await expect(page).to_have_url(f"{stack.origin}/manage")
    assert stack.billing.hosted_pages == {}  # no checkout was opened
    await expect_overview(page, status="live", users=3, storage=2)
    await stack.shot("changed")

    await reload_settled(stack)
    await expect_overview(page, status="live", users=3, sync="Up to date")
    # 2 users fewer at 20.00 USD a month each, changed on the term's first day: the whole month's
    # difference comes back, and billing's credit note (its webhook has arrived by now) agrees
    # with the preview.
    await expect(page.get_by_text("Billing credited 40.00 USD, as shown.")).to_be_visible()
    assert summary(stack.platform) == [
        ("POST", PROFESSIONAL, "5", "1", "2"),
        ("PUT", PROFESSIONAL, "3", "1", "2"),
    ]


async def test_cancel_at_term_end_and_reactivate_leave_the_platform_alone(stack: Stack):
    page, expect = stack.page, pw.expect
    sub = await stack.live_subscription()
    term_end = sub.term_end.isoformat()
    await stack.enter()
    await page.get_by_role("link", name="Cancel subscription").click()
    await expect(page.locator("h1")).to_have_text("Cancel your subscription")
    await expect(page.locator("input[name=when][value=term_end]")).to_be_checked()
    await expect(page.locator("form")).to_contain_text(
        f"At the end of the current term ({term_end})"
    )
    await page.check("#confirm")
    await stack.shot("cancel-form")

    await page.click("#cancel-confirm")
    await expect_notice(
        page, f"Your subscription will end on {term_end}. You can reactivate it until then."
    )
    await expect_overview(page, status="non-renewing", users=5)
    await expect(detail(page, "Ends on")).to_have_text(term_end)
    await expect(detail(page, "Next billing date")).to_have_count(0)  # no charge is coming
    await stack.shot("non-renewing")
    await stack.settled()
    assert stack.billing.subscriptions[sub.subscription_id].status == "non_renewing"
    assert summary(stack.platform) == [("POST", PROFESSIONAL, "5", "1", "2")]  # no Cancel

    await page.get_by_role("button", name="Reactivate subscription").click()
    await expect_notice(page, "Your subscription is active again.")
    await expect_overview(page, status="live", users=5)
    await stack.shot("reactivated")
    await reload_settled(stack)
    await expect_overview(page, status="live", sync="Up to date")
    assert stack.billing.subscriptions[sub.subscription_id].status == "live"
    assert summary(stack.platform) == [("POST", PROFESSIONAL, "5", "1", "2")]


async def test_cancel_now_deletes_on_the_platform_and_reactivate_adds_again(stack: Stack):
    page, expect = stack.page, pw.expect
    sub = await stack.live_subscription()
    await stack.enter()
    await page.get_by_role("link", name="Cancel subscription").click()
    await expect(page.locator("h1")).to_have_text("Cancel your subscription")
    await page.check("input[name=when][value=now]")
    await page.check("#confirm")
    await stack.shot("cancel-form")

    await page.click("#cancel-confirm")
    await expect_notice(page, "Your subscription was cancelled.")
    await expect_overview(page, status="cancelled")
    await stack.shot("cancelled")
    await reload_settled(stack)
    await expect_overview(page, status="cancelled", sync="Up to date")
    assert summary(stack.platform) == [
        ("POST", PROFESSIONAL, "5", "1", "2"),
        ("DELETE", PROFESSIONAL),
    ]
    cancel_body = stack.platform.calls[1].body or {}
    assert (cancel_body["zuid"], cancel_body["subscription_id"]) == (ZUID, sub.subscription_id)

    await page.get_by_role("button", name="Reactivate subscription").click()
    await expect_notice(page, "Your subscription is active again.")
    await expect_overview(page, status="live", users=5, storage=2)
    await stack.shot("reactivated")
    await reload_settled(stack)
    await expect_overview(page, status="live", sync="Up to date")
    assert summary(stack.platform) == [
        ("POST", PROFESSIONAL, "5", "1", "2"),
        ("DELETE", PROFESSIONAL),
        ("POST", PROFESSIONAL, "5", "1", "2"),
    ]


@pytest.mark.parametrize("stack", [{"plans": {"pause_policy": "keep"}}], indirect=True)
async def test_pause_shows_the_credit_before_pausing_and_resume_makes_it_live(stack: Stack):
    page, expect = stack.page, pw.expect
    sub = await stack.live_subscription()
    resume_on = date(2026, 6, 17)
    await stack.enter()
    await page.get_by_role("link", name="Pause").click()
    await expect(page.locator("h1")).to_have_text("Pause your subscription")
    await page.fill("#resume_on", resume_on.isoformat())
    await page.click("#preview")
    # Worked by hand: Professional 5 users x 20.00 + 2 storage units x 5.00 = 110.00 USD a month;
    # the term runs June 10 - July 9 (30 days); June 10-16 is 7 paid days paused; by Zoho's rule
    # (docs/contracts.md §5) the day rate in cents: 110.00 / 30 = 3.666... -> 3.66; x 7 = 25.62.
    await expect(page.locator("#credit-amount")).to_have_text("25.62 USD")
    await expect(page.locator(".credit")).to_contain_text(
        "for 7 paid days at 3.66 USD a day (110.00 USD over the 30 days of this billing period"
    )
    await expect(page.locator("#pause-effect")).to_have_text(
        "The app keeps working while your subscription is paused."
    )
    await stack.shot("credit-preview")
    assert stack.billing.subscriptions[sub.subscription_id].status == "live"  # only a preview

    await expect(page.locator("#pause-confirm")).to_have_text(f"Pause until {resume_on}")
    await page.click("#pause-confirm")
    await expect_notice(
        page,
        f"Your subscription is paused until {resume_on}. "
        "The app keeps working while your subscription is paused.",
    )
    await expect_overview(page, status="paused", users=5)
    await expect(detail(page, "Resumes on")).to_have_text(resume_on.isoformat())
    await stack.shot("paused")
    await stack.settled()
    paused = stack.billing.subscriptions[sub.subscription_id]
    assert (paused.status, paused.paused_at, paused.resume_date) == ("paused", TODAY, resume_on)
    # plans.pause_policy = "keep": the platform is not told about a pause.
    assert summary(stack.platform) == [("POST", PROFESSIONAL, "5", "1", "2")]

    await page.get_by_role("button", name="Resume now").click()
    await expect_notice(page, "Your subscription is running again.")
    await expect_overview(page, status="live", users=5)
    await stack.shot("resumed")
    await reload_settled(stack)
    await expect_overview(page, status="live", sync="Up to date")
    assert stack.billing.subscriptions[sub.subscription_id].status == "live"
    assert summary(stack.platform) == [("POST", PROFESSIONAL, "5", "1", "2")]


WIDE = {"width": 1280, "height": 900}


@pytest.mark.parametrize("stack", [{"plans": {"pause_policy": "suspend"}}], indirect=True)
async def test_suspend_pause_pages_say_what_happens_at_desktop_and_phone_width(stack: Stack):
    """The pause confirmation page and the paused overview, at 1280 and 390 px: each says the
    app stops and may not keep the org's data, and when it resumes; nothing overflows the
    viewport. The Cancel reaches the platform at pause."""
    page, expect = stack.page, pw.expect
    sub = await stack.live_subscription()
    resume_on = date(2026, 6, 17)
    await page.set_viewport_size(WIDE)
    await stack.enter()
    await page.goto(f"{stack.origin}/manage/pause?resume_on={resume_on}")
    await expect(page.locator("#pause-effect")).to_contain_text("The app stops working")
    await expect(page.locator("#resume-summary")).to_contain_text(f"until {resume_on}")
    await expect(page.locator("#credit-amount")).to_have_text("25.62 USD")
    await stack.shot("pause-confirm-1280")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await stack.shot("pause-confirm-390")

    await page.click("#pause-confirm")
    await expect_overview(page, status="paused", users=5)
    await expect(detail(page, "Resumes on")).to_have_text(resume_on.isoformat())
    await expect(detail(page, "While paused")).to_contain_text("may not keep")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await stack.shot("paused-overview-390")
    await page.set_viewport_size(WIDE)
    await stack.shot("paused-overview-1280")
    await stack.settled()
    assert stack.billing.subscriptions[sub.subscription_id].status == "paused"
    assert summary(stack.platform) == [
        ("POST", PROFESSIONAL, "5", "1", "2"),
        ("DELETE", PROFESSIONAL),
    ]


async def test_failed_payment_says_so_and_try_again_keeps_the_choices(stack: Stack):
    page, expect = stack.page, pw.expect
    await stack.enter()
    await page.get_by_role("link", name="Choose a plan").click()
    await page.check(f"input[name=planid][value='{PROFESSIONAL}']")
    await page.check("input[name=frequency][value=yearly]")
    await page.fill("#users", "4")
    await page.fill("#storage", "1")
    await page.click("#continue")
    await expect_checkout(stack, "Professional (yearly) x 4", "Storage (5 GB, yearly) x 1")
    await stack.shot("checkout")
    await page.click("#fail")

    await expect(page.locator("h1")).to_have_text("The payment did not go through")
    await expect(page.locator("main")).to_contain_text("you were not charged")
    await stack.shot("payment-failed")
    assert stack.billing.subscriptions == {}
    await stack.settled()
    assert stack.platform.calls == []

    await page.get_by_role("link", name="Try again").click()
    await expect(page.locator("h1")).to_have_text("Choose a plan")
    await expect(page.locator(f"input[name=planid][value='{PROFESSIONAL}']")).to_be_checked()
    await expect(page.locator("input[name=frequency][value=yearly]")).to_be_checked()
    await expect(page.locator("#users")).to_have_value("4")
    await expect(page.locator("#storage")).to_have_value("1")
    await stack.shot("try-again")

    # The kept choices go through this time.
    await page.click("#continue")
    await expect_checkout(stack, "Professional (yearly) x 4")
    await page.click("#pay")
    await expect_notice(page, "Thank you: your subscription is active.")
    await reload_settled(stack)
    await expect_overview(
        page, status="live", users=4, storage=1, cycle="Yearly", sync="Up to date"
    )
    await stack.shot("paid")
    assert summary(stack.platform) == [("POST", PROFESSIONAL, "4", "4", "1")]


@pytest.mark.parametrize("stack", [{"plans": {"pause_policy": "keep"}}], indirect=True)
async def test_pages_fit_a_phone_without_sideways_scrolling(stack: Stack):
    """390x844: overview, plan forms, cancel and pause pages all fit the screen's width."""
    await stack.use_phone()
    page, expect = stack.page, pw.expect
    await stack.enter()
    assert await page.evaluate("() => window.innerWidth") == PHONE["width"]
    await no_horizontal_scroll(page)
    await stack.shot("empty-overview")

    await page.get_by_role("link", name="Choose a plan").click()
    await expect(page.locator("h1")).to_have_text("Choose a plan")
    await no_horizontal_scroll(page)
    await stack.shot("plan-form")

    await stack.live_subscription()
    await page.goto(f"{stack.origin}/manage")
    await expect_overview(page, status="live", users=5, storage=2, sync="Up to date")
    await no_horizontal_scroll(page)
    await stack.shot("overview")

    for link, heading, step in (
        ("Change plan, users or storage", "Change your subscription", "change-form"),
        ("Cancel subscription", "Cancel your subscription", "cancel-form"),
        ("Pause", "Pause your subscription", "pause-form"),
    ):
        await page.goto(f"{stack.origin}/manage")
        await page.get_by_role("link", name=link).click()
        await expect(page.locator("h1")).to_have_text(heading)
        if step == "pause-form":
            await page.fill("#resume_on", "2026-06-17")
            await page.click("#preview")
            await expect(page.locator("#credit-amount")).to_be_visible()
        await no_horizontal_scroll(page)
        await stack.shot(step)


# -- landing verification ---------------------------------------------------------------------


async def test_signed_link_opens_the_page_and_the_same_link_again_is_refused(stack: Stack):
    page, expect = stack.page, pw.expect
    link = stack.landing_url()
    await page.goto(link)
    await expect(page).to_have_url(f"{stack.origin}/manage")
    await expect(page.locator("main")).to_contain_text("Your organisation has no subscription yet")
    await stack.shot("signed-link")

    await page.context.clear_cookies()
    response = await page.goto(link)  # the same link, e.g. from the history or a shared copy
    assert response is not None
    assert response.status == 403
    await expect(page.locator("h1")).to_have_text("We could not open this page")
    await expect(page.locator("main")).to_contain_text(
        "the link was already used; each link opens the page once"
    )
    await expect(page.locator("main")).to_contain_text("Subscription menu")
    await stack.shot("replayed-link")
    assert await page.context.cookies() == []


@pytest.mark.parametrize("stack", [{"link_secret": None}], indirect=True)
async def test_without_verification_the_page_shows_the_refusal(stack: Stack):
    page, expect = stack.page, pw.expect
    response = await page.goto(stack.landing_url(sign=False))
    assert response is not None
    assert response.status == 503
    await expect(page.locator("h1")).to_have_text("This page is not set up yet")
    await expect(page.locator("main")).to_contain_text("BROKER_LANDING__LINK_SECRET")
    await expect(page.locator("main")).to_contain_text("BROKER_LANDING__VERIFY")
    await stack.shot("not-configured")
    assert await page.context.cookies() == []
    await stack.live_subscription(users=3, storage=0)  # webhooks keep reaching the platform
