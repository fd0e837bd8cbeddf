"""Each metric moves when its event happens: /metrics is scraped through the real app and read
with prometheus_client's own parser, as Prometheus would read it."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from broker.clients.billing_meter import endpoint_of
from broker.errors import (
    BillingNotFound,
    BillingRateLimited,
    BillingUnavailable,
    InvalidIdentifier,
    StoreError,
)
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import billing_client_key
from broker.web.webhook_refusals import refusal_reason
from tests.conftest import db_rows, post_event
from tests.support.basics import ZAPIKEY, eventually, subscription_event
from tests.support.metrics import Samples, parse, scrape, value
from tests.support.pages import Browser, PageWorld

Client = TestClient[web.Request, web.Application]
SIGNING_SECRET = "metrics-tests-signing-secret"


def refused(samples: Samples, reason: str) -> float:
    return value(samples, "broker_webhooks_refused_total", reason=reason)


# --- refused webhooks ----------------------------------------------------------------------------


async def test_refused_webhooks_are_counted_by_reason(make_broker):
    broker = await make_broker(server={"max_body_bytes": 4096})
    assert refused(await scrape(broker), "zapikey") == 0

    assert (await post_event(broker, subscription_event(), key=None)).status == 401
    assert (await post_event(broker, subscription_event(), key="wrong-key")).status == 401
    assert (await post_event(broker, b"not json")).status == 400
    assert (await post_event(broker, b"{}", headers={"Content-Type": "text/html"})).status == 415
    assert (await post_event(broker, b"x" * 4097)).status == 413
    assert (await broker.get("/webhooks/billing")).status == 405

    samples = await scrape(broker)
    assert refused(samples, "zapikey") == 2
    assert refused(samples, "unreadable") == 1
    assert refused(samples, "media_type") == 1
    assert refused(samples, "too_large") == 1
    assert refused(samples, "method") == 1
    assert refused(samples, "signature") == 0
    # An accepted webhook is not a refusal; other routes' errors are not webhooks.
    assert (await post_event(broker, subscription_event())).status == 200
    assert (await broker.get("/no-such-page")).status == 404
    after = await scrape(broker)
    refusals = {k: v for k, v in after.items() if k[0] == "broker_webhooks_refused_total"}
    assert sum(refusals.values()) == 6
    assert value(after, "broker_webhooks_total", outcome="queued") == 1


async def test_a_bad_signature_is_counted_apart_from_a_bad_zapikey(make_broker):
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    unsigned = await post_event(client, subscription_event())
    assert unsigned.status == 401
    forged = await post_event(
        client, subscription_event(), headers={"X-Zoho-Webhook-Signature": "00" * 32}
    )
    assert forged.status == 401
    samples = await scrape(client)
    assert refused(samples, "signature") == 2
    assert refused(samples, "zapikey") == 0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (StoreError("the disk is full"), "store_unavailable"),
        (InvalidIdentifier("not a Zoho id"), "unreadable"),
        (web.HTTPRequestEntityTooLarge(max_size=10, actual_size=11), "too_large"),
        (RuntimeError("a bug"), "internal"),
    ],
)
def test_the_rarer_refusals_have_their_own_reason(error: BaseException, reason: str):
    assert refusal_reason(error) == reason


# --- parked subscriptions ------------------------------------------------------------------------


async def test_parked_subscriptions_are_read_from_the_database_at_each_scrape(broker: Client):
    assert value(await scrape(broker), "broker_parked_subscriptions") == 0
    orphan = subscription_event(subscription_id="100000000000000007", zuid=None, zgid=None)
    answered = await post_event(broker, orphan)
    assert (await answered.json())["outcome"] == "parked"
    await post_event(broker, subscription_event(subscription_id="100000000000000008"))
    assert value(await scrape(broker), "broker_parked_subscriptions") == 1


# --- platform calls, finished deliveries, dead letters --------------------------------------------


async def test_platform_calls_reach_metrics_from_the_worker_in_the_web_process(
    broker: Client, simulator: PlatformSimulator
):
    await post_event(broker, subscription_event())
    await simulator.wait_until(lambda s: len(s.applied) == 1)

    async def finished() -> bool:
        samples = await scrape(broker)
        return value(samples, "broker_deliveries_finished_total", state="done") == 1

    await eventually(finished, message="the delivery counted as done on /metrics")
    samples = await scrape(broker)
    assert value(samples, "broker_platform_calls_total", action="add", outcome="success") == 1
    assert value(samples, "broker_platform_call_seconds_count") == 1
    assert value(samples, "broker_platform_call_seconds_sum") > 0


async def test_a_dead_letter_logs_a_warning_and_is_counted(
    broker: Client, simulator: PlatformSimulator
):
    simulator.fail_next(1, status=400)
    with capture_logs() as logs:
        await post_event(broker, subscription_event())

        async def dead_logged() -> bool:
            return any(entry["event"] == "delivery.dead_letter" for entry in logs)

        await eventually(dead_logged, message="the dead letter's warning")
    [entry] = [entry for entry in logs if entry["event"] == "delivery.dead_letter"]
    assert entry["log_level"] == "warning"
    assert entry["subscription_id"] == "100000000000000001"
    assert entry["action"] == "add"
    assert entry["status"] == 400
    assert "INVALID_DATA" in entry["reason"]
    [row] = await db_rows(broker, "SELECT id, state FROM deliveries")
    assert (entry["delivery_id"], row["state"]) == (row["id"], "dead")
    assert ZAPIKEY not in repr(entry)
    samples = await scrape(broker)
    assert value(samples, "broker_deliveries_finished_total", state="dead") == 1
    assert value(samples, "broker_platform_calls_total", action="add", outcome="reject") == 1


# --- billing API calls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("GET", "/plans", "GET /plans"),
        ("GET", "/subscriptions/2077000000012345", "GET /subscriptions/{id}"),
        ("post", "/subscriptions/2077000000012345/cancel", "POST /subscriptions/{id}/cancel"),
        ("GET", "/hostedpages/abcdefgh", "GET /hostedpages/{id}"),  # letters, still an id
        ("POST", "/hostedpages/newsubscription", "POST /hostedpages/newsubscription"),
        ("GET", "/customers/9001?x=1", "GET /customers/{id}"),
    ],
)
def test_billing_endpoints_are_route_templates_never_ids(method: str, path: str, endpoint: str):
    assert endpoint_of(method, path) == endpoint


async def test_billing_calls_are_counted_and_timed_by_endpoint(
    world: PageWorld, owner: Browser, live: str
):
    client = world.app[billing_client_key]
    with pytest.raises(BillingNotFound):
        await client.get_subscription("2077000000999999")
    samples = parse((await owner.get("/metrics")).text)

    def calls(endpoint: str, outcome: str) -> float:
        return value(samples, "broker_billing_calls_total", endpoint=endpoint, outcome=outcome)

    assert calls("POST /hostedpages/newsubscription", "ok") == 1
    assert calls("GET /hostedpages/{id}", "ok") >= 1
    assert calls("GET /subscriptions/{id}", "not_found") == 1
    answered = value(
        samples, "broker_billing_call_seconds_count", endpoint="POST /hostedpages/newsubscription"
    )
    assert answered == 1
    text = (await owner.get("/metrics")).text
    assert live not in text
    assert "2077000000999999" not in text


async def test_billing_failures_are_counted_by_what_went_wrong(world: PageWorld):
    client, scraper = world.app[billing_client_key], await world.browser()
    await client.list_plans()  # an access token first, so the API calls below are what fails
    before = parse((await scraper.get("/metrics")).text)

    def moved(samples: Samples, endpoint: str, outcome: str) -> float:
        labels = {"endpoint": endpoint, "outcome": outcome}
        return value(samples, "broker_billing_calls_total", **labels) - value(
            before, "broker_billing_calls_total", **labels
        )

    world.sim.go_down()  # connections dropped unanswered: a GET is tried max_attempts (2) times
    with pytest.raises(BillingUnavailable):
        await client.get_subscription("2077000000999999")
    world.sim.come_up()
    world.sim.limit_requests(1)  # the first call passes, the next gets 429 with Retry-After 60
    await client.list_plans()
    with pytest.raises(BillingRateLimited):
        await client.list_plans()

    samples = parse((await scraper.get("/metrics")).text)
    assert moved(samples, "GET /subscriptions/{id}", "unavailable") == 2
    assert moved(samples, "GET /plans", "ok") == 1
    assert moved(samples, "GET /plans", "rate_limited") == 1


async def test_billing_that_cannot_be_reached_is_counted_as_unreachable(world: PageWorld):
    client = world.app[billing_client_key]
    await client.list_plans()  # an access token first, so the API call below is what fails
    await world.billing_server.close()
    with pytest.raises(BillingUnavailable):
        await client.get_subscription("2077000000999999")
    samples = parse((await (await world.browser()).get("/metrics")).text)
    unreachable = {"endpoint": "GET /subscriptions/{id}", "outcome": "unreachable"}
    assert value(samples, "broker_billing_calls_total", **unreachable) == 2
