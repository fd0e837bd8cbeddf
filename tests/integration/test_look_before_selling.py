"""Never sell twice: before the page offers Subscribe, and again when a subscribe form is posted,
the broker asks billing which subscriptions the org has, and feeds what it finds through the
same pipeline as a webhook. The demo's own story is the worked example: the second org already
pays for Professional in billing, but every webhook about it was dropped."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.app import create_app
from broker.core.link_signing import sign_link
from broker.manage.sessions import COOKIE_NAME
from broker.simulators.billing import BillingSimulator
from broker.simulators.demo import DemoSecrets, demo_settings
from broker.simulators.demo_world import (
    DEMO_ORGS,
    STORY_PLAN,
    billing_simulator,
    seed_story,
)
from broker.simulators.platform import PlatformSimulator
from tests.support.basics import EMAIL, eventually
from tests.support.pages import (
    OWNER_ZGID,
    OWNER_ZUID,
    STANDARD_CODE,
    PageWorld,
    WorldFactory,
    session_payload,
)

ServerFactory = Callable[..., Awaitable[TestServer]]
Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
SECOND = DEMO_ORGS[1]


class DemoWorld:
    """The demo's broker, billing and console, with the second org's story seeded and no
    webhook ever delivered."""

    def __init__(
        self, broker: Client, billing: BillingSimulator, platform: PlatformSimulator, secret: str
    ) -> None:
        self.broker = broker
        self.billing = billing
        self.platform = platform
        self.secret = secret

    async def open_page_as_second_owner(self) -> str:
        pairs = list(SECOND.landing_params().items())
        pairs += [("ts", str(int(time.time()))), ("nonce", f"n{time.monotonic_ns()}")]
        pairs.append(("sig", sign_link(pairs, self.secret)))
        entered = await self.broker.get(f"/manage?{urlencode(pairs)}", allow_redirects=False)
        assert entered.status == 303, await entered.text()
        page = await self.broker.get("/manage", allow_redirects=False)
        assert page.status == 200
        return await page.text()

    def billing_subscriptions_of_second_org(self) -> list[str]:
        return [
            s.subscription_id
            for s in self.billing.subscriptions.values()
            if s.customer.email == SECOND.email
        ]

    def adds_for_second_org(self) -> list[str]:
        return [
            str(c.body["subscription_id"])  # type: ignore[index]
            for c in self.platform.applied
            if c.method == "POST" and c.zgid == SECOND.zgid
        ]


async def demo_world(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    *billing_middlewares: web.Middleware,
) -> DemoWorld:
    """The demo's servers; ``billing_middlewares`` alter billing's answers on the wire."""
    secrets = DemoSecrets()
    billing = billing_simulator("127.0.0.1", 21000, secrets)
    seed_story(billing)
    billing_app = billing.app()
    billing_app.middlewares.extend(billing_middlewares)
    platform = PlatformSimulator(secrets.zapikey)
    billing_server = await aiohttp_server(billing_app)
    platform_server = await aiohttp_server(platform.app())
    settings = demo_settings(
        "127.0.0.1", 21000, platform_server.port, billing_server.port, tmp_path, secrets
    )
    broker = await aiohttp_client(create_app(settings))
    return DemoWorld(broker, billing, platform, secrets.link_secret)


@pytest.fixture
async def demo(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> DemoWorld:
    return await demo_world(tmp_path, aiohttp_server, aiohttp_client)


async def test_second_org_sees_billings_subscription_before_any_webhook_and_is_added_once(
    demo: DemoWorld,
):
    [bought] = demo.billing_subscriptions_of_second_org()

    page = await demo.open_page_as_second_owner()

    assert "Professional" in page
    assert "no subscription yet" not in page
    assert "/manage/subscribe" not in page
    await demo.platform.wait_until(lambda p: len(p.applied) >= 1)
    assert demo.adds_for_second_org() == [bought]
    again = await demo.broker.get("/manage", allow_redirects=False)
    assert "/manage/subscribe" not in await again.text()
    assert demo.adds_for_second_org() == [bought]
    assert demo.billing_subscriptions_of_second_org() == [bought]


async def test_second_org_posting_the_subscribe_form_by_hand_is_refused_and_sells_nothing(
    demo: DemoWorld,
):
    [bought] = demo.billing_subscriptions_of_second_org()
    await demo.open_page_as_second_owner()
    csrf = await _csrf_of(demo.broker)

    posted = await demo.broker.post(
        "/manage/subscribe",
        data={
            "csrf_token": csrf,
            "planid": STORY_PLAN.rsplit("_", 1)[1],
            "frequency": "monthly",
            "users": "1",
            "storage": "0",
        },
        allow_redirects=False,
    )

    text = await posted.text()
    assert posted.status == 409, text
    assert "already has a running subscription" in text
    assert demo.billing_subscriptions_of_second_org() == [bought]
    await demo.platform.wait_until(lambda p: len(p.applied) >= 1)
    assert demo.adds_for_second_org() == [bought]
    assert not [r for r in demo.billing.api_requests if "hostedpages" in r.path]


async def _csrf_of(client: Client) -> str:
    async def has_cookie() -> bool:
        jar = client.session.cookie_jar.filter_cookies(client.make_url("/manage"))
        return COOKIE_NAME in jar

    await eventually(has_cookie, message="a page session")
    jar = client.session.cookie_jar.filter_cookies(client.make_url("/manage"))
    return str(session_payload(jar[COOKIE_NAME].value)["csrf"])


# --- the page's own world (tests/support/pages.py): the rules one at a time ----------------------

NO_CACHE = {"read_cache_seconds": 0}


def hosted_page_bodies(world: PageWorld) -> list[dict[str, Any]]:
    return [
        r.body
        for r in world.sim.api_requests
        if r.method == "POST" and r.path == "/hostedpages/newsubscription"
    ]


async def test_billing_unreachable_the_page_says_so_and_no_checkout_starts(world: PageWorld):
    owner = await world.signed_in()
    world.sim.go_down()

    page = await owner.get("/manage")
    form = await owner.get("/manage/subscribe")

    assert page.status == 200
    assert "Billing could not be asked which subscriptions" in page.text
    assert "/manage/subscribe" not in page.text
    assert form.status == 503
    assert "could not be asked which subscriptions" in form.text
    assert hosted_page_bodies(world) == []


async def test_a_second_subscription_that_bills_in_one_org_is_a_conflict_never_a_second_add(
    make_world: WorldFactory,
):
    world = await make_world(billing=NO_CACHE)
    owner = await world.signed_in()
    first = await world.subscribed(owner)
    [customer_id] = {s.customer.customer_id for s in world.sim.subscriptions.values()}
    # Bought elsewhere for the same org (billing's own portal, say): its webhooks arrive.
    second = world.sim.subscribe(
        STANDARD_CODE, quantity=2, customer_id=customer_id, zuid=OWNER_ZUID, zgid=OWNER_ZGID
    ).subscription_id
    await world.settle()

    page = await owner.get("/manage")

    assert [c.body["subscription_id"] for c in world.calls("POST")] == [first]  # type: ignore[index]
    [row] = await world.rows(
        "SELECT state, reason FROM subscriptions WHERE subscription_id = ?", [second]
    )
    assert row["state"] == "conflict"
    assert row["reason"].startswith("conflict: the organisation already has subscription")
    assert "paying for two subscriptions" in page.text
    assert f"subscription {second}" in page.text
    assert "Earlier subscriptions" not in page.text  # only ended ones are earlier
    metrics = (await owner.get("/metrics")).text
    assert "broker_subscription_conflicts 1.0" in metrics
    await world.deliveries_finished()
    assert [c.body["subscription_id"] for c in world.calls("POST")] == [first]  # type: ignore[index]


async def test_checkout_for_an_org_with_a_billing_customer_reuses_that_customer(
    make_world: WorldFactory,
):
    world = await make_world(billing=NO_CACHE)
    # An earlier, ended subscription whose webhooks never arrived: only billing knows the
    # customer (its cf_zgid names the org).
    world.sim.drop_next_webhooks(3)  # created, payment, cancelled
    old = world.sim.subscribe(STANDARD_CODE, zuid=OWNER_ZUID, zgid=OWNER_ZGID, email=EMAIL)
    world.sim.state.cancel(old.subscription_id, at_term_end=False)
    owner = await world.signed_in()

    await world.open_checkout(owner)

    [body] = hosted_page_bodies(world)
    assert body["customer_id"] == old.customer.customer_id
    assert "customer" not in body
    assert len(world.sim.state.ledger.customers) == 1


async def test_an_email_only_match_is_an_ops_notice_that_neither_blocks_nor_reuses(
    make_world: WorldFactory,
):
    world = await make_world(billing=NO_CACHE)
    world.sim.drop_next_webhooks(2)
    # Another org of the same person: same email, no org on the customer.
    other = world.sim.subscribe(STANDARD_CODE, email=EMAIL, display_name="Other Org")
    owner = await world.signed_in()

    page = await owner.get("/manage")
    await world.open_checkout(owner)

    assert "/manage/subscribe" in page.text
    [body] = hosted_page_bodies(world)
    assert "customer_id" not in body
    [notice] = await world.audit("notice.email_only_match")
    assert notice["zgid"] == OWNER_ZGID
    assert other.customer.customer_id in notice["detail"]


async def test_a_listed_subscription_billing_cannot_read_makes_the_page_sell_nothing(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    # A row of the org's subscriptions that does not read (no id) might be the one it pays for:
    # the page must not skip it and offer a plan, but say billing could not be asked.
    @web.middleware
    async def unreadable_row(
        request: web.Request, handler: web.RequestHandler
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path == "/billing/v1/subscriptions" and isinstance(response, web.Response):
            assert isinstance(response.body, bytes)
            body = json.loads(response.body)
            body["subscriptions"].append({"status": "live", "plan_code": STORY_PLAN})
            return web.json_response(body)
        return response

    world = await demo_world(tmp_path, aiohttp_server, aiohttp_client, unreadable_row)
    billing = world.billing

    page = await world.open_page_as_second_owner()
    form = await world.broker.get("/manage/subscribe", allow_redirects=False)

    assert "Billing could not be asked which subscriptions" in page
    assert "/manage/subscribe" not in page
    assert form.status == 503
    assert world.adds_for_second_org() == []
    assert not [r for r in billing.api_requests if r.path == "/hostedpages/newsubscription"]
