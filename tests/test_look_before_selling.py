"""Never sell twice: before the page offers Subscribe, and again when a subscribe form is posted,
the broker asks billing which subscriptions the org has, and feeds what it finds through the
same pipeline as a webhook. The demo's own story is the worked example: the second org already
pays for Professional in billing, but every webhook about it was dropped."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

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
from broker.web.app import create_app
from tests.page_support import session_payload
from tests.support import eventually

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


@pytest.fixture
async def demo(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> DemoWorld:
    secrets = DemoSecrets()
    billing = billing_simulator("127.0.0.1", 21000, secrets)
    seed_story(billing)
    platform = PlatformSimulator(secrets.zapikey)
    billing_server = await aiohttp_server(billing.app())
    platform_server = await aiohttp_server(platform.app())
    settings = demo_settings(
        "127.0.0.1", 21000, platform_server.port, billing_server.port, tmp_path, secrets
    )
    broker = await aiohttp_client(create_app(settings))
    return DemoWorld(broker, billing, platform, secrets.link_secret)


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
