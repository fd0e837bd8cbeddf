"""The broker's Zoho Billing client (docs/contracts.md §4) against the real billing simulator.

Each test serves ``BillingSimulator`` on port 0 and drives ``BillingClient`` over real HTTP with an
aiohttp session the test owns. Retry sleeps are recorded instead of slept, and token expiry is
driven by an injected clock, so no test waits for backoff or for a token to age. The session also
carries a trace hook that records every request as sent, to see pages and access tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs
from yarl import URL

from broker.clients.billing import BillingClient
from broker.config import BillingSettings
from broker.core.billing_requests import (
    NewSubscriptionPage,
    PauseRequest,
    SubscriptionUpdate,
    UpdateSubscriptionPage,
)
from broker.core.hosted_pages import CheckoutStatus, HostedPage
from broker.core.org_billing import customer_record
from broker.core.pause_credit import pause_credit
from broker.errors import (
    BillingAnswerInvalid,
    BillingAuthError,
    BillingNotFound,
    BillingRateLimited,
    BillingRejected,
    BillingUnavailable,
    InvalidIdentifier,
)
from broker.simulators.billing import BillingSimulator
from tests.support.billing import (
    APP,
    CLIENT_ID,
    CLIENT_SECRET,
    JUNE_1,
    ORG,
    ORG_HEADER,
    PROFESSIONAL,
    REFRESH_TOKEN,
    STANDARD,
    STORAGE,
    make_sim,
)

BACK = "https://broker.example/manage/return"

ServerFactory = Callable[..., Awaitable[TestServer]]


# --- helpers -----------------------------------------------------------------------------------


@dataclass
class Sleeps:
    """Stands in for asyncio.sleep: records each retry delay and returns at once."""

    seconds: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.seconds.append(delay)


@dataclass
class Clock:
    """A monotonic clock the test moves by hand."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    method: str
    url: URL
    headers: dict[str, str]


@dataclass
class Wire:
    """Every request the session sent, as sent (filled by an aiohttp trace hook)."""

    requests: list[Sent] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._started)
        config.on_request_end.append(self._ended)
        return config

    async def _started(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.requests.append(Sent(params.method, params.url, dict(params.headers)))

    async def _ended(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        self.statuses.append(params.response.status)

    def api(self, path: str) -> list[Sent]:
        return [sent for sent in self.requests if sent.url.path == f"/billing/v1{path}"]

    def access_tokens(self) -> set[str]:
        return {
            sent.headers["Authorization"].removeprefix("Zoho-oauthtoken ")
            for sent in self.requests
            if "Authorization" in sent.headers
        }


@dataclass
class Harness:
    sim: BillingSimulator
    server: TestServer
    session: aiohttp.ClientSession
    wire: Wire

    @property
    def origin(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def settings(self, **overrides: Any) -> BillingSettings:
        values: dict[str, Any] = {
            "base_url": f"{self.origin}/billing/v1",
            "accounts_url": self.origin,
            "organization_id": ORG,
            "client_id": CLIENT_ID,
            "client_secret": SecretStr(CLIENT_SECRET),
            "refresh_token": SecretStr(REFRESH_TOKEN),
        }
        return BillingSettings(**(values | overrides))

    def client(
        self, sleeps: Sleeps | None = None, clock: Clock | None = None, **overrides: Any
    ) -> BillingClient:
        extra: dict[str, Any] = {"sleep": sleeps or Sleeps()}
        if clock is not None:
            extra["clock"] = clock
        return BillingClient(self.session, self.settings(**overrides), **extra)

    async def pay(self, page: HostedPage) -> aiohttp.ClientResponse:
        """What the buyer's browser does: press "Pay now" on the hosted page."""
        assert page.url is not None
        pay_url = URL(page.url).with_path(f"/hostedpages/{page.hostedpage_id}/pay")
        async with aiohttp.ClientSession() as browser:
            response = await browser.post(pay_url, allow_redirects=False)
            response.release()
            return response


def new_subscription_payload(**changes: Any) -> NewSubscriptionPage:
    return NewSubscriptionPage.model_validate(
        {
            "customer": {"display_name": "Example Org", "email": "owner@example.com"},
            "plan": {"plan_code": STANDARD, "quantity": 5},
            "addons": [{"addon_code": STORAGE, "quantity": 2}],
            "custom_fields": [
                {"label": "zuid", "value": "60000000001"},
                {"label": "zgid", "value": "70000000001"},
            ],
            "redirect_url": BACK,
        }
        | changes
    )


def write_catalog(path: Path, active_plans: int, inactive_plans: int = 0) -> Path:
    plans = [
        {
            "plan_code": f"{{app_domain}}_P{number:04d}",
            "plan_id": str(3000000000 + number),
            "name": f"Plan {number}",
            "recurring_price": 10,
            "interval_unit": "months",
            "status": "active" if number < active_plans else "inactive",
        }
        for number in range(active_plans + inactive_plans)
    ]
    document = {
        "product": {"product_id": "2077000000010001", "name": "{app_domain}"},
        "plans": plans,
        "addons": [],
    }
    path.write_text(json.dumps(document), "utf-8")
    return path


@asynccontextmanager
async def serve(sim: BillingSimulator, aiohttp_server: ServerFactory) -> AsyncIterator[Harness]:
    """Serve ``sim`` on port 0 and open the session the client under test will use."""
    server = await aiohttp_server(sim.app())
    wire = Wire()
    async with aiohttp.ClientSession(trace_configs=[wire.trace()]) as session:
        yield Harness(sim, server, session, wire)


@pytest.fixture
def sim() -> BillingSimulator:
    return make_sim()


@pytest.fixture
async def harness(sim: BillingSimulator, aiohttp_server: ServerFactory) -> AsyncIterator[Harness]:
    async with serve(sim, aiohttp_server) as ready:
        yield ready


# --- the access token --------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused_across_calls(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)

    await billing.list_plans()
    await billing.get_subscription(sub.subscription_id)
    await billing.list_addons()

    assert harness.sim.token_requests == 1
    assert len(harness.wire.access_tokens()) == 1


async def test_twenty_concurrent_calls_on_a_cold_client_share_one_token_request(
    harness: Harness,
) -> None:
    billing = harness.client()

    results = await asyncio.gather(*(billing.list_plans() for _ in range(20)))

    assert all(len(plans) == 6 for plans in results)
    assert harness.sim.token_requests == 1  # counted where it lands, not by the client itself
    assert len(harness.wire.access_tokens()) == 1


async def test_twenty_concurrent_calls_refused_with_401_share_one_refresh(
    harness: Harness,
) -> None:
    billing = harness.client()
    await billing.list_plans()
    harness.sim.expire_tokens()

    results = await asyncio.gather(*(billing.list_plans() for _ in range(20)))

    assert all(len(plans) == 6 for plans in results)
    assert harness.sim.token_requests == 2


async def test_token_is_refreshed_once_the_clock_reaches_expiry_minus_the_margin(
    harness: Harness,
) -> None:
    """expires_in 3600 s, margin 300 s: still used at 3299.9 s, replaced at 3300 s."""
    clock = Clock()
    billing = harness.client(clock=clock, token_refresh_margin_seconds=300)
    await billing.list_plans()

    clock.now += 3299.9
    await billing.list_plans()
    before_margin = harness.sim.token_requests
    clock.now += 0.1
    await billing.list_plans()

    assert before_margin == 1
    assert harness.sim.token_requests == 2
    assert len(harness.wire.access_tokens()) == 2
    assert 401 not in harness.wire.statuses  # replaced before the old token stopped working


async def test_refresh_margin_is_capped_at_half_a_short_token_lifetime(
    aiohttp_server: ServerFactory,
) -> None:
    """A 120 s token with a 300 s margin is used for 60 s, not refreshed on every call."""
    sim = make_sim(access_token_ttl_seconds=120)
    clock = Clock()
    async with serve(sim, aiohttp_server) as h:
        billing = h.client(clock=clock)
        await billing.list_plans()
        clock.now += 59
        await billing.list_plans()
        reused = sim.token_requests
        clock.now += 1
        await billing.list_plans()

    assert reused == 1
    assert sim.token_requests == 2


async def test_401_refreshes_the_token_once_and_the_call_succeeds(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps)
    sub = harness.sim.subscribe(STANDARD)
    await billing.list_plans()
    harness.sim.expire_tokens()

    read = await billing.get_subscription(sub.subscription_id)

    assert read is not None
    assert read.subscription_id == sub.subscription_id
    assert harness.sim.token_requests == 2
    assert len(harness.wire.api(f"/subscriptions/{sub.subscription_id}")) == 2
    assert sleeps.seconds == []  # a 401 is answered by a refresh, not a backoff


async def test_token_refused_right_after_a_refresh_is_an_auth_error_not_a_loop(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim(access_token_ttl_seconds=0)  # every token is already expired when issued
    sleeps = Sleeps()
    async with serve(sim, aiohttp_server) as h:
        billing = h.client(sleeps)
        with pytest.raises(BillingAuthError, match="refused a freshly issued access token"):
            await billing.list_plans()
        tokens = h.wire.access_tokens()

    assert sim.token_requests == 2
    assert sleeps.seconds == []
    assert len(tokens) == 2


@pytest.mark.parametrize(
    ("setting", "wrong", "zoho_error"),
    [
        ("client_secret", SecretStr("wrong-client-secret-9876"), "invalid_client"),
        ("client_id", "1000.NOTTHECLIENT", "invalid_client"),
        ("refresh_token", SecretStr("1000.wrong-refresh-token-5432"), "invalid_code"),
    ],
)
async def test_refused_credentials_raise_an_auth_error_that_carries_no_secret(
    harness: Harness, setting: str, wrong: Any, zoho_error: str
) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps, **{setting: wrong})

    with pytest.raises(BillingAuthError) as caught:
        await billing.list_plans()

    error = caught.value
    shown = f"{error} {error.hint} {error.as_dict()} {error!r}"
    assert zoho_error in str(error)
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "wrong-client-secret-9876", "wrong-refresh-token"):
        assert secret not in shown
    assert harness.sim.token_requests == 1  # refused credentials are not retried
    assert sleeps.seconds == []
    assert harness.wire.api("/plans") == []


async def test_sixth_refresh_within_a_minute_is_rate_limited(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps, max_attempts=2, max_retry_after_seconds=30)
    for _ in range(5):  # one cold refresh, then four forced by 401s: the limit is used up
        harness.sim.expire_tokens()
        await billing.list_plans()
    assert harness.sim.token_requests == 5
    harness.sim.expire_tokens()

    with pytest.raises(BillingRateLimited) as caught:
        await billing.list_plans()

    assert caught.value.retry_after == 60.0
    assert sleeps.seconds == []  # Zoho's minute is longer than a page may wait: fail fast
    assert harness.sim.token_requests == 6  # and do not ask again during the lockout


async def test_calls_during_a_refresh_lockout_do_not_ask_accounts_again(
    harness: Harness,
) -> None:
    """Zoho allows 5 refreshes a minute; once it refuses, asking again only prolongs it."""
    billing = harness.client(max_attempts=1)
    for _ in range(5):
        harness.sim.expire_tokens()
        await billing.list_plans()
    harness.sim.expire_tokens()
    with pytest.raises(BillingRateLimited):
        await billing.list_plans()
    assert harness.sim.token_requests == 6

    results = await asyncio.gather(
        *(billing.list_plans() for _ in range(20)), return_exceptions=True
    )

    assert all(isinstance(result, BillingRateLimited) for result in results)
    assert harness.sim.token_requests == 6  # today: 26, one per waiting call


# --- retries -----------------------------------------------------------------------------------


async def test_429_is_retried_after_sleeping_at_least_retry_after(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps)
    await billing.list_plans()
    harness.sim.fail_next(1, 429, retry_after=2)

    plans = await billing.list_plans()

    assert len(plans) == 6
    assert len(sleeps.seconds) == 1
    assert sleeps.seconds[0] >= 2


async def test_retry_after_longer_than_the_cap_fails_fast(harness: Harness) -> None:
    """A user waits on the page: a Retry-After beyond the cap is reported, not slept on."""
    sleeps, clock = Sleeps(), Clock()
    billing = harness.client(sleeps, clock, max_retry_after_seconds=5)
    await billing.list_plans()
    harness.sim.fail_next(1, 429, retry_after=120)

    with pytest.raises(BillingRateLimited) as caught:
        await billing.list_plans()

    assert caught.value.retry_after == 120
    assert sleeps.seconds == []
    clock.now += 120
    assert len(await billing.list_plans()) == 6  # once it has passed, calls go through


async def test_after_a_429_nobody_calls_billing_until_its_retry_after_has_passed(
    harness: Harness,
) -> None:
    """Zoho's limit is per org per minute: calling during the wait only prolongs it."""
    clock = Clock()
    billing = harness.client(Sleeps(), clock, max_retry_after_seconds=5)
    await billing.list_plans()
    harness.sim.fail_next(1, 429, retry_after=120)
    with pytest.raises(BillingRateLimited):
        await billing.list_plans()
    reached = len(harness.sim.calls())

    clock.now += 119
    with pytest.raises(BillingRateLimited) as caught:
        await billing.get_subscription("2077000000300001")

    assert caught.value.retry_after == pytest.approx(1.0)
    assert len(harness.sim.calls()) == reached  # refused here, not sent
    assert billing.busy_for() == pytest.approx(1.0)
    clock.now += 1
    assert len(await billing.list_plans()) == 6  # the wait is over: calls go through


async def test_two_5xx_then_ok_succeeds_after_two_backoff_sleeps(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps, initial_backoff_seconds=0.5, max_backoff_seconds=8)
    sub = harness.sim.subscribe(STANDARD)
    await billing.list_plans()
    harness.sim.fail_next(2, 503)

    read = await billing.get_subscription(sub.subscription_id)

    assert read is not None
    assert read.status == "live"
    assert len(sleeps.seconds) == 2
    assert all(0 < delay <= 8 for delay in sleeps.seconds)
    assert len(harness.wire.api(f"/subscriptions/{sub.subscription_id}")) == 3


async def test_5xx_forever_gives_up_as_unavailable_after_max_attempts(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps, max_attempts=3)
    await billing.list_plans()
    harness.sim.fail_next(50, 500)

    with capture_logs() as logs, pytest.raises(BillingUnavailable, match="HTTP 500") as caught:
        await billing.list_plans()

    calls = [entry for entry in logs if entry["event"] == "billing.call"]
    assert type(caught.value) is BillingUnavailable
    assert [entry["status"] for entry in calls] == [500, 500, 500]
    assert len(sleeps.seconds) == 2


async def test_api_dropping_connections_is_unavailable_after_max_attempts(
    harness: Harness,
) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps, max_attempts=3)
    await billing.list_plans()
    harness.sim.go_down()

    with pytest.raises(BillingUnavailable, match="connection to Zoho Billing"):
        await billing.list_plans()

    assert len(sleeps.seconds) == 2  # a GET is safe to repeat
    harness.sim.come_up()
    assert len(await billing.list_plans()) == 6


async def test_accounts_dropping_connections_is_unavailable(harness: Harness) -> None:
    billing = harness.client(max_attempts=2)
    harness.sim.go_down()

    with pytest.raises(BillingUnavailable, match="could not reach Zoho accounts"):
        await billing.list_plans()


async def test_nothing_listening_is_unavailable(aiohttp_server: ServerFactory) -> None:
    sim = make_sim()
    sleeps = Sleeps()
    async with serve(sim, aiohttp_server) as h:
        billing = h.client(sleeps, max_attempts=2)
        await h.server.close()
        with pytest.raises(BillingUnavailable, match="could not reach"):
            await billing.list_plans()

    assert len(sleeps.seconds) == 1


async def test_timed_out_cancel_is_not_sent_again(harness: Harness) -> None:
    """A POST that may have reached Zoho is never repeated: a second cancel could fail or
    double-apply. The user is told it could not be confirmed instead."""
    sleeps = Sleeps()
    billing = harness.client(sleeps, request_timeout_seconds=0.2, max_attempts=2)
    sub = harness.sim.subscribe(STANDARD)
    await billing.list_plans()
    harness.sim.set_delay(30)

    with pytest.raises(BillingUnavailable, match="did not answer in time"):
        await billing.cancel_subscription(sub.subscription_id, at_term_end=False)
    await harness.sim.wait_until(lambda s: s.abandoned_requests == 1)

    assert sleeps.seconds == []
    assert harness.sim.subscriptions[sub.subscription_id].status == "live"


async def test_timed_out_read_is_retried(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps, request_timeout_seconds=0.2, max_attempts=2)
    sub = harness.sim.subscribe(STANDARD)
    await billing.list_plans()
    harness.sim.set_delay(30)

    with pytest.raises(BillingUnavailable, match="did not answer in time"):
        await billing.get_subscription(sub.subscription_id)
    await harness.sim.wait_until(lambda s: s.abandoned_requests == 2)

    assert len(sleeps.seconds) == 1


async def test_slow_token_endpoint_with_a_tiny_timeout_is_unavailable(harness: Harness) -> None:
    billing = harness.client(request_timeout_seconds=0.1, max_attempts=1)
    harness.sim.set_delay(30)

    with pytest.raises(BillingUnavailable, match="Zoho accounts did not answer in time"):
        await billing.list_plans()
    await harness.sim.wait_until(lambda s: s.abandoned_requests == 1)


# --- Zoho's envelope ---------------------------------------------------------------------------


async def test_unknown_subscription_is_not_found_with_zohos_code(harness: Harness) -> None:
    sleeps = Sleeps()
    billing = harness.client(sleeps)

    with pytest.raises(BillingNotFound) as caught:
        await billing.get_subscription("2077000000399999")

    assert caught.value.zoho_code == 1002
    assert caught.value.message == "Subscription does not exist."
    assert sleeps.seconds == []


async def test_cancelling_a_cancelled_subscription_is_rejected_with_zohos_message(
    harness: Harness,
) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)
    await billing.cancel_subscription(sub.subscription_id, at_term_end=False)

    with pytest.raises(BillingRejected) as caught:
        await billing.cancel_subscription(sub.subscription_id, at_term_end=False)

    assert type(caught.value) is BillingRejected
    assert caught.value.zoho_code == 2001
    assert caught.value.message == "The subscription has already been cancelled."


@pytest.mark.parametrize("organization_id", ["99999999", " "])
async def test_wrong_organization_is_rejected_with_code_6041(
    harness: Harness, organization_id: str
) -> None:
    billing = harness.client(organization_id=organization_id)

    with pytest.raises(BillingRejected) as caught:
        await billing.list_plans()

    assert type(caught.value) is BillingRejected
    assert caught.value.zoho_code == 6041
    assert ORG_HEADER in caught.value.message
    assert harness.wire.api("/plans")[0].headers[ORG_HEADER] == organization_id


async def test_every_api_call_carries_the_token_and_organization_headers(
    harness: Harness,
) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)

    await billing.get_subscription(sub.subscription_id)
    await billing.pause_subscription(sub.subscription_id)

    api_calls = [sent for sent in harness.wire.requests if sent.url.path.startswith("/billing")]
    assert len(api_calls) == 2
    for sent in api_calls:
        assert sent.headers[ORG_HEADER] == ORG
        assert sent.headers["Authorization"].startswith("Zoho-oauthtoken 1000.")


# --- pagination --------------------------------------------------------------------------------


async def test_list_plans_returns_every_active_plan_across_pages(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    sim = make_sim(catalog_file=write_catalog(tmp_path / "catalog.json", 450, inactive_plans=7))
    async with serve(sim, aiohttp_server) as h:
        billing = h.client()
        plans = await billing.list_plans()
        pages = [dict(sent.url.query) for sent in h.wire.api("/plans")]

    codes = [plan.plan_code for plan in plans]
    assert codes == [f"{APP}_P{number:04d}" for number in range(450)]
    assert [page["page"] for page in pages] == ["1", "2", "3"]
    assert {page["filter_by"] for page in pages} == {"PlanStatus.ACTIVE"}


async def test_list_without_page_context_is_read_past_page_one(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    """``page_context`` is documented for invoices only: without it, a full page means more."""
    catalog = write_catalog(tmp_path / "catalog.json", 450, inactive_plans=7)
    sim = make_sim(catalog_file=catalog, list_page_context=False)
    async with serve(sim, aiohttp_server) as h:
        plans = await h.client().list_plans()
        pages = [dict(sent.url.query)["page"] for sent in h.wire.api("/plans")]

    assert [plan.plan_code for plan in plans] == [f"{APP}_P{n:04d}" for n in range(450)]
    assert pages == ["1", "2", "3"]  # 200, 200, 50: the short page ends it


async def test_list_that_never_ends_stops_at_the_page_bound_and_says_so(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path / "catalog.json", 450, inactive_plans=7)
    sim = make_sim(catalog_file=catalog, list_page_context=False)
    async with serve(sim, aiohttp_server) as h:
        billing = h.client(max_list_pages=2)
        with capture_logs() as logs:
            plans = await billing.list_plans()

    assert len(plans) == 400
    [cut] = [entry for entry in logs if entry["event"] == "billing.list_cut_short"]
    assert (cut["path"], cut["pages"], cut["items"]) == ("/plans", 2, 400)


async def test_new_subscription_checkout_paid_reads_back_as_success(harness: Harness) -> None:
    billing = harness.client()

    page = await billing.new_subscription_page(new_subscription_payload())
    paid = await harness.pay(page)
    assert page.hostedpage_id is not None
    result = await billing.get_hosted_page(page.hostedpage_id)

    assert page.status_word == "fresh"
    assert paid.status == 303
    assert paid.headers["Location"].startswith(BACK)
    assert result.status is CheckoutStatus.PAID
    assert result.subscription is not None
    sub = result.subscription
    assert (sub["plan"]["plan_code"], sub["plan"]["quantity"], sub["status"]) == (
        STANDARD,
        5,
        "live",
    )
    assert [(a["addon_code"], a["quantity"]) for a in sub["addons"]] == [(STORAGE, 2)]
    assert sub["custom_field_hash"]["cf_zuid"] == "60000000001"
    assert sub["custom_field_hash"]["cf_zgid"] == "70000000001"
    assert sub["subscription_id"] in harness.sim.subscriptions


async def test_unpaid_checkout_reads_as_open_without_a_subscription(harness: Harness) -> None:
    billing = harness.client()

    page = await billing.new_subscription_page(new_subscription_payload())
    assert page.hostedpage_id is not None
    result = await billing.get_hosted_page(page.hostedpage_id)

    assert (result.status, result.status_word, result.subscription) == (
        CheckoutStatus.OPEN,
        "fresh",
        None,
    )
    assert result.url == page.url
    assert harness.sim.subscriptions == {}


@pytest.mark.parametrize("wrapped", [False, True], ids=["flat as documented", "wrapped"])
async def test_hosted_page_is_read_flat_as_documented_or_in_a_wrapper(
    aiohttp_server: ServerFactory, wrapped: bool
) -> None:
    async with serve(make_sim(hosted_page_wrapped=wrapped), aiohttp_server) as h:
        billing = h.client()
        page = await billing.new_subscription_page(new_subscription_payload())
        await h.pay(page)
        assert page.hostedpage_id is not None
        body = await billing.request("GET", f"/hostedpages/{page.hostedpage_id}")
        result = await billing.get_hosted_page(page.hostedpage_id)

    assert ("hostedpage" in body, body.get("status")) == (
        (True, None) if wrapped else (False, "success")
    )
    assert result.status is CheckoutStatus.PAID
    assert result.subscription is not None
    assert result.subscription["plan"]["plan_code"] == STANDARD


async def test_update_subscription_checkout_changes_the_plan_when_paid(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD, quantity=2)

    page = await billing.update_subscription_page(
        UpdateSubscriptionPage.model_validate(
            {
                "subscription_id": sub.subscription_id,
                "plan": {"plan_code": PROFESSIONAL, "quantity": 3},
                "redirect_url": BACK,
            }
        )
    )
    paid = await harness.pay(page)
    assert page.hostedpage_id is not None
    result = await billing.get_hosted_page(page.hostedpage_id)

    assert paid.status == 303
    assert result.status is CheckoutStatus.PAID
    assert result.subscription is not None
    changed = result.subscription
    assert (changed["plan"]["plan_code"], changed["plan"]["quantity"]) == (PROFESSIONAL, 3)
    assert harness.sim.subscriptions[sub.subscription_id].plan.plan_code == PROFESSIONAL


async def test_update_subscription_changes_plan_and_addons_directly(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD, quantity=2)

    changed = await billing.update_subscription(
        sub.subscription_id,
        SubscriptionUpdate.model_validate(
            {
                "plan": {"plan_code": PROFESSIONAL, "quantity": 4},
                "addons": [{"addon_code": STORAGE, "quantity": 1}],
            }
        ),
    )

    assert changed is not None
    assert changed.plan is not None
    assert changed.subscription_id == sub.subscription_id
    assert (changed.plan.plan_code, changed.plan.quantity) == (PROFESSIONAL, 4)
    assert [a.addon_code for a in changed.addons] == [STORAGE]
    assert harness.sim.events[-1].event_type == "subscription_upgraded"


async def test_cancel_at_term_end_then_reactivate_removes_the_schedule(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)

    scheduled = await billing.cancel_subscription(sub.subscription_id, at_term_end=True)
    reactivated = await billing.reactivate_subscription(sub.subscription_id)

    assert scheduled is not None
    assert reactivated is not None
    assert scheduled.status == "non_renewing"
    assert reactivated.status == "live"
    sent = harness.wire.api(f"/subscriptions/{sub.subscription_id}/cancel")
    assert [dict(request.url.query) for request in sent] == [{"cancel_at_end": "true"}]


async def test_cancel_now_then_reactivate_within_the_term(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)

    cancelled = await billing.cancel_subscription(sub.subscription_id, at_term_end=False)
    reactivated = await billing.reactivate_subscription(sub.subscription_id)

    assert cancelled is not None
    assert reactivated is not None
    assert cancelled.status == "cancelled"
    assert reactivated.status == "live"
    assert [event.event_type for event in harness.sim.events][-2:] == [
        "subscription_cancelled",
        "subscription_reactivated",
    ]
    sent = harness.wire.api(f"/subscriptions/{sub.subscription_id}/cancel")
    assert [dict(request.url.query) for request in sent] == [{"cancel_at_end": "false"}]


async def test_pause_and_resume_credit_what_pause_credit_computes(harness: Harness) -> None:
    """$10 x 30 seats for June, paused June 10, resumed June 15: both sides say $50.00."""
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD, quantity=30)
    harness.sim.set_today(date(2026, 6, 10))

    paused = await billing.pause_subscription(sub.subscription_id)
    harness.sim.set_today(date(2026, 6, 15))
    resumed = await billing.resume_subscription(sub.subscription_id)

    expected = pause_credit(
        price=Decimal("300"),
        term_start=JUNE_1,
        term_end=date(2026, 6, 30),
        pause_start=date(2026, 6, 10),
        resume_on=date(2026, 6, 15),
    )
    assert paused is not None
    assert resumed is not None
    assert paused.status == "paused"
    assert resumed.status == "live"
    credit = (resumed.model_extra or {})["last_pause_credit"]
    assert Decimal(str(credit)) == expected.amount == Decimal("50.00")


async def test_pause_with_a_resume_date_sends_it(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)

    paused = await billing.pause_subscription(
        sub.subscription_id, PauseRequest(resume_date="2026-06-20")
    )

    assert paused is not None
    assert paused.status == "paused"
    assert harness.sim.subscriptions[sub.subscription_id].resume_date == date(2026, 6, 20)


async def test_the_simulated_customer_carries_the_zuid_and_zgid_custom_fields(
    harness: Harness,
) -> None:
    """The broker reads no customer itself; the simulator still answers Zoho's shape."""
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD, zuid="60000000001", zgid="70000000001")

    customer = (await billing.request("GET", f"/customers/{sub.customer.customer_id}"))["customer"]

    assert customer["customer_id"] == sub.customer.customer_id
    fields = customer["custom_field_hash"]
    assert (fields["cf_zuid"], fields["cf_zgid"]) == ("60000000001", "70000000001")


async def test_get_subscription_and_list_addons_read_the_simulator(harness: Harness) -> None:
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD, quantity=3, addons={STORAGE: 2})

    read = await billing.get_subscription(sub.subscription_id)
    addons = await billing.list_addons()

    assert read is not None
    assert read.plan is not None
    assert (read.plan.plan_code, read.plan.quantity) == (STANDARD, 3)
    assert {addon.addon_code for addon in addons} == {STORAGE, f"{STORAGE}_Y"}


async def test_the_simulated_events_api_lists_as_documented_and_reads_one(
    harness: Harness,
) -> None:
    """List items carry only ``event_id``, ``event_type`` and ``event_time``, newest first, no
    ``page_context``, undocumented filters ignored; the payload is on ``GET /events/{id}``."""
    billing = harness.client()
    sub = harness.sim.subscribe(STANDARD)
    harness.sim.state.cancel(sub.subscription_id, at_term_end=False)

    everything = await billing.request("GET", "/events", params={"page": "1"})
    filtered = await billing.request(
        "GET", "/events", params={"event_type": "subscription_cancelled", "sort_order": "A"}
    )
    event_id = everything["events"][0]["event_id"]
    one = (await billing.request("GET", f"/events/{event_id}"))["event"]

    assert [e["event_type"] for e in everything["events"]] == [
        "subscription_cancelled",
        "payment_thankyou",
        "subscription_created",
    ]
    assert {frozenset(e) for e in everything["events"]} == {
        frozenset({"event_id", "event_type", "event_time"})
    }
    assert "page_context" not in everything
    assert filtered["events"] == everything["events"]
    assert set(one) == {"event_id", "event_type", "event_time", "payload", "webhooks"}
    assert one["event_id"] == event_id
    assert json.loads(one["payload"])["data"]["subscription"]["status"] == "cancelled"
    with pytest.raises(BillingNotFound):
        await billing.request("GET", "/events/2077000000599999")


# --- secrets -----------------------------------------------------------------------------------


async def test_no_secret_or_access_token_reaches_a_log_line(harness: Harness) -> None:
    billing = harness.client()
    with capture_logs() as logs:
        page = await billing.new_subscription_page(new_subscription_payload())
        harness.sim.expire_tokens()
        await harness.pay(page)
        assert page.hostedpage_id is not None
        result = await billing.get_hosted_page(page.hostedpage_id)
        harness.sim.fail_next(1, 503)
        assert result.subscription is not None
        await billing.get_subscription(str(result.subscription["subscription_id"]))
        with pytest.raises(BillingAuthError):
            await harness.client(client_secret=SecretStr("wrong-secret-2468")).list_plans()

    text = repr(logs)
    tokens = harness.wire.access_tokens()
    assert len(tokens) == 2
    assert [entry["event"] for entry in logs].count("billing.token_refreshed") == 2
    assert "billing.call" in text
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "wrong-secret-2468", *tokens):
        assert secret not in text


# --- data centre defaults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_centre", "base_url", "accounts_url"),
    [
        ("com", "https://www.zohoapis.com/billing/v1", "https://accounts.zoho.com"),
        ("eu", "https://www.zohoapis.eu/billing/v1", "https://accounts.zoho.eu"),
        ("in", "https://www.zohoapis.in/billing/v1", "https://accounts.zoho.in"),
        ("com.au", "https://www.zohoapis.com.au/billing/v1", "https://accounts.zoho.com.au"),
        ("jp", "https://www.zohoapis.jp/billing/v1", "https://accounts.zoho.jp"),
        ("ca", "https://www.zohoapis.ca/billing/v1", "https://accounts.zohocloud.ca"),
        ("sa", "https://www.zohoapis.sa/billing/v1", "https://accounts.zoho.sa"),
        ("com.cn", "https://www.zohoapis.com.cn/billing/v1", "https://accounts.zoho.com.cn"),
    ],
)
def test_data_centre_chooses_the_api_and_accounts_hosts(
    data_centre: str, base_url: str, accounts_url: str
) -> None:
    settings = BillingSettings(
        data_centre=data_centre,
        organization_id=ORG,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
    )

    assert settings.resolved_base_url == base_url
    assert settings.resolved_accounts_url == accounts_url


def test_explicit_urls_override_the_data_centre_without_a_trailing_slash() -> None:
    settings = BillingSettings(
        data_centre="eu",
        base_url="http://127.0.0.1:9/billing/v1/",
        accounts_url="http://127.0.0.1:9/",
        organization_id=ORG,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
    )

    assert settings.resolved_base_url == "http://127.0.0.1:9/billing/v1"
    assert settings.resolved_accounts_url == "http://127.0.0.1:9"


# --- ids in paths ------------------------------------------------------------------------------

BAD_PATH_IDS = ["../customers/1", "12a", "١٢", "1/cancel", "1?x=1", "", "9" * 40]


@pytest.mark.parametrize("bad", BAD_PATH_IDS)
async def test_client_refuses_to_build_a_path_from_an_id_that_is_not_a_zoho_id(
    harness: Harness, bad: str
) -> None:
    """Defence in depth: whatever slipped past the edges never reaches a Billing API path."""
    client = harness.client()
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: client.get_subscription(bad),
        lambda: client.update_subscription(bad, {}),
        lambda: client.cancel_subscription(bad, at_term_end=True),
        lambda: client.reactivate_subscription(bad),
        lambda: client.pause_subscription(bad),
        lambda: client.resume_subscription(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifier, match="not a Zoho id"):
            await call()
    assert harness.wire.requests == []


@pytest.mark.parametrize("bad", ["../x", "a b", "१२", "", "x" * 200])
async def test_client_refuses_a_hosted_page_id_with_characters_no_page_id_has(
    harness: Harness, bad: str
) -> None:
    with pytest.raises(InvalidIdentifier):
        await harness.client().get_hosted_page(bad)
    assert harness.wire.requests == []


# --- answers that do not validate ----------------------------------------------------------------


def answering(sim: BillingSimulator, answers: dict[str, dict[str, object]]) -> web.Application:
    """The simulator, except that the paths in ``answers`` answer that JSON (code 0)."""

    @web.middleware
    async def broken(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        answer = answers.get(request.path)
        return web.json_response(answer) if answer is not None else await handler(request)

    app = sim.app()
    app.middlewares.append(broken)
    return app


@pytest.mark.parametrize(
    ("path", "answer", "problem"),
    [
        (
            "/billing/v1/subscriptions/2077000000300001",
            {"code": 0, "message": "success", "subscription": {"status": "live"}},
            "subscription.subscription_id: Field required",
        ),
        (
            "/billing/v1/customers/2077000000200001",
            {"code": 0, "message": "success", "customer": {"customer_id": "12.5"}},
            "customer.customer_id: Value error",
        ),
        (
            "/billing/v1/hostedpages/hp1",
            {"code": 0, "status": "success", "data": {"subscription": {"subscription_id": "1"}}},
            "data.subscription.status:",
        ),
    ],
    ids=[
        "subscription without id",
        "customer id not a Zoho id",
        "paid page whose subscription has no status",
    ],
)
async def test_an_answer_that_does_not_validate_is_a_clear_error(
    aiohttp_server: ServerFactory, path: str, answer: dict[str, object], problem: str
) -> None:
    sim = make_sim()
    server = await aiohttp_server(answering(sim, {path: answer}))
    async with aiohttp.ClientSession() as session:
        billing = Harness(sim, server, session, Wire()).client()
        call = {
            "subscriptions": lambda: billing.get_subscription("2077000000300001"),
            "plans": billing.list_plans,
            "customers": lambda: billing.get_customer("2077000000200001"),
            "hostedpages": lambda: billing.get_hosted_page("hp1"),
        }[path.split("/")[3]]
        with pytest.raises(BillingAnswerInvalid) as caught:
            await call()

    assert caught.value.status == 502
    assert any(line.startswith(problem) for line in caught.value.details["problems"])
    assert problem.split(":")[0] in caught.value.message


async def test_a_customer_whose_custom_fields_hold_lists_or_objects_is_read_whole(
    aiohttp_server: ServerFactory,
) -> None:
    """Multi-select fields hold lists and lookup fields objects: a customer carrying them is
    read as before, the values kept as sent, and its zuid / zgid still found beside them."""
    regions = {"label": "Regions", "api_name": "cf_regions", "value": ["EU", "US"]}
    account = {"label": "Account", "api_name": "cf_account", "value": {"id": "9001"}}
    customer = {
        "customer_id": "2077000000200001",
        "display_name": "Example Org",
        "email": "Owner@Example.com",
        "custom_fields": [
            regions,
            account,
            {"label": "zuid", "api_name": "cf_zuid", "value": "60000000001"},
            {"label": "zgid", "api_name": "cf_zgid", "value": "70000000001"},
        ],
        "custom_field_hash": {"cf_regions": ["EU", "US"], "cf_account": {"id": "9001"}},
    }
    path = "/billing/v1/customers/2077000000200001"
    sim = make_sim()
    server = await aiohttp_server(
        answering(sim, {path: {"code": 0, "message": "success", "customer": customer}})
    )
    async with aiohttp.ClientSession() as session:
        read = await Harness(sim, server, session, Wire()).client().get_customer("2077000000200001")

    assert read is not None
    assert [field.value for field in read.custom_fields[:2]] == [["EU", "US"], {"id": "9001"}]
    assert read.custom_field_hash == customer["custom_field_hash"]
    assert read.model_dump(mode="json", exclude_unset=True) == customer
    record = customer_record(read, now=1.0)
    assert record is not None
    assert (record.zuid, record.zgid) == ("60000000001", "70000000001")


# --- one bad row in a list -----------------------------------------------------------------------


def with_rows(
    sim: BillingSimulator, path: str, resource: str, rows: list[object]
) -> web.Application:
    """The simulator, except that its answer on ``path`` lists ``rows`` too, after its first
    row: billing's own rows stay good around them."""

    @web.middleware
    async def inject(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        response = await handler(request)
        if request.path != path or not isinstance(response, web.Response) or not response.body:
            return response
        assert isinstance(response.body, bytes)
        body = json.loads(response.body)
        body[resource][1:1] = rows
        return web.json_response(body)

    app = sim.app()
    app.middlewares.append(inject)
    return app


def skipped(logs: Sequence[Mapping[str, object]]) -> list[tuple[object, object, object, str]]:
    """(list, row, id, first problem) of each ``billing.list_row_skipped`` warning."""
    found: list[tuple[object, object, object, str]] = []
    for entry in logs:
        problems = entry.get("problems")
        if entry["event"] == "billing.list_row_skipped" and isinstance(problems, list):
            found.append((entry["list"], entry["row"], entry["id"], str(problems[0])))
    return found


OTHER_PRODUCT_PLAN = {
    "plan_code": "otherapp_basic",
    "name": "Another product's plan",
    "status": "active",
    "recurring_price": 5,
    # A decimal number is no id: another product's plan must not break this app's catalog.
    "product_id": 2.077e15,
}


async def test_a_plan_that_does_not_read_is_skipped_and_the_catalog_keeps_the_rest(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim()
    good = await _plan_codes(sim, aiohttp_server)
    app = with_rows(sim, "/billing/v1/plans", "plans", [OTHER_PRODUCT_PLAN, "standard"])
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        with capture_logs() as logs:
            plans = await Harness(sim, server, session, Wire()).client().list_plans()

    assert [plan.plan_code for plan in plans] == good
    assert skipped(logs) == [
        ("plans", 2, None, "plans[2]: not an object"),  # logged as the page is read
        (
            "plans",
            1,
            "otherapp_basic",
            "plans[1].product_id: Value error, must be a non-empty string or an integer id "
            "(not a decimal number)",
        ),
    ]


async def _plan_codes(sim: BillingSimulator, aiohttp_server: ServerFactory) -> list[str]:
    """The plan codes the simulator lists, read through the client unchanged."""
    async with serve(sim, aiohttp_server) as h:
        return [plan.plan_code for plan in await h.client().list_plans()]


async def test_an_addon_that_does_not_read_is_skipped_and_the_rest_are_listed(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim()
    bad = {"addon_code": "otherapp_seats", "price_brackets": "by seat"}
    server = await aiohttp_server(with_rows(sim, "/billing/v1/addons", "addons", [bad]))
    async with aiohttp.ClientSession() as session:
        with capture_logs() as logs:
            addons = await Harness(sim, server, session, Wire()).client().list_addons()

    assert sorted(addon.addon_code for addon in addons) == [STORAGE, f"{STORAGE}_Y"]
    [(name, row, addon_id, problem)] = skipped(logs)
    assert (name, row, addon_id) == ("addons", 1, "otherapp_seats")
    assert problem.startswith("addons[1].price_brackets:")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"subscription_id": "SUB-7", "status": "live"}, "subscriptions[1].subscription_id"),
        ({"status": "live"}, "subscriptions[1].subscription_id: Field required"),
        (7, "subscriptions[1]: not an object"),
    ],
)
async def test_a_listed_subscription_that_does_not_read_refuses_the_list_read_before_selling(
    aiohttp_server: ServerFactory, row: object, problem: str
) -> None:
    # Read before the page sells: a row skipped could be the subscription the org pays for.
    sim = make_sim()
    first = sim.subscribe(STANDARD)
    sim.subscribe(PROFESSIONAL, customer_id=first.customer.customer_id)
    server = await aiohttp_server(
        with_rows(sim, "/billing/v1/subscriptions", "subscriptions", [row])
    )
    async with aiohttp.ClientSession() as session:
        billing = Harness(sim, server, session, Wire()).client()
        with pytest.raises(BillingAnswerInvalid) as refused:
            await billing.subscriptions_of_customer(first.customer.customer_id)

    assert refused.value.status == 502
    assert str(refused.value.details["problems"][0]).startswith(problem)


async def test_a_listed_customer_that_does_not_read_is_skipped_and_the_rest_kept(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim()
    first = sim.subscribe(STANDARD)
    second = sim.subscribe(STANDARD, display_name="Second Org", email="second@example.com")
    secret = "s3cr3t-value-never-logged"
    bad = {"customer_id": "2077000000999999", "custom_fields": [secret], "email": secret}
    server = await aiohttp_server(with_rows(sim, "/billing/v1/customers", "customers", [bad]))
    async with aiohttp.ClientSession() as session:
        billing = Harness(sim, server, session, Wire()).client()
        with capture_logs() as logs:
            customers = await billing.list_customers()

    assert sorted(str(customer.customer_id) for customer in customers) == sorted(
        [first.customer.customer_id, second.customer.customer_id]
    )
    [(name, row, customer_id, problem)] = skipped(logs)
    assert (name, row, customer_id) == ("customers", 1, "2077000000999999")
    assert problem.startswith("customers[1].custom_fields.0:")
    assert secret not in repr(logs)
