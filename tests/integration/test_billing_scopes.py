"""OAuth scopes: the simulated billing refuses a token without a route's scope, the broker names
the missing scope wherever it meets one (the page's client, the reconciliation backfill), and
the scope tables of docs/contracts.md §4.1, docs/zoho-setup.md, the simulator and the client
are one table.

Expected scopes come from Zoho Billing's OpenAPI documents (docs/contracts.md §4.1 cites each).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from broker.clients.billing import BillingClient
from broker.clients.billing_scopes import REQUIRED_SCOPES, SCOPE_OF_ENDPOINT
from broker.config import BillingSettings
from broker.delivery.reconcile import RunOutcome, run_reconciliation
from broker.errors import BillingScopeMissing
from broker.simulators.billing import BillingSimulator
from broker.simulators.billing.api import API_PREFIX
from broker.simulators.billing.scopes import ALL_SCOPES, ROUTE_SCOPES, required_scope
from broker.web.appkeys import reconcile_key
from tests.support.billing import CLIENT_ID, CLIENT_SECRET, ORG, ORG_HEADER, REFRESH_TOKEN, make_sim
from tests.support.pages import STANDARD_CODE, WorldFactory

ServerFactory = Callable[..., Awaitable[TestServer]]
DOCS = Path(__file__).resolve().parents[2] / "docs"
CONTRACTS = Path(__file__).resolve().parents[2] / "docs/contracts.md"
PLANS_READ = "ZohoSubscriptions.plans.READ"
ADDONS_READ = "ZohoSubscriptions.addons.READ"
WEBHOOKS_READ = "ZohoSubscriptions.webhooks.READ"
# Zoho's documents (specs/*.yml, security: Zoho_Auth) for the calls the broker makes.
DOCUMENTED = {
    "ZohoSubscriptions.plans.READ",
    "ZohoSubscriptions.addons.READ",
    "ZohoSubscriptions.subscriptions.READ",
    "ZohoSubscriptions.customers.READ",
    "ZohoSubscriptions.hostedpages.READ",
    "ZohoSubscriptions.webhooks.READ",
    "ZohoSubscriptions.hostedpages.CREATE",
    "ZohoSubscriptions.subscriptions.CREATE",
    "ZohoSubscriptions.subscriptions.UPDATE",
    "ZohoSubscriptions.customers.UPDATE",  # specs/customers.yml: PUT /customers/{customer_id}
}


def without(*scopes: str) -> list[str]:
    return sorted(ALL_SCOPES - set(scopes))


@asynccontextmanager
async def billing_client(
    sim: BillingSimulator, aiohttp_server: ServerFactory
) -> AsyncIterator[BillingClient]:
    server = await aiohttp_server(sim.app())
    origin = str(server.make_url("")).rstrip("/")
    settings = BillingSettings(
        base_url=f"{origin}/billing/v1",
        accounts_url=origin,
        organization_id=ORG,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
    )

    async def no_sleep(_: float) -> None:
        return None

    async with aiohttp.ClientSession() as session:
        yield BillingClient(session, settings, sleep=no_sleep)


# --- the simulator ---------------------------------------------------------------------------


async def test_simulated_api_refuses_a_token_without_the_routes_scope_with_401_code_57(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim(scopes=without(WEBHOOKS_READ))
    server = await aiohttp_server(sim.app())
    form = {
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/oauth/v2/token"), data=form) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Zoho-oauthtoken {token}", ORG_HEADER: ORG}
        async with session.get(server.make_url("/billing/v1/events"), headers=headers) as events:
            refused = (events.status, await events.json())
        async with session.get(server.make_url("/billing/v1/plans"), headers=headers) as plans:
            allowed = plans.status

    assert refused == (
        401,
        {"code": 57, "message": "You are not authorized to perform this operation"},
    )
    assert allowed == 200


def test_every_simulated_api_route_requires_a_scope_from_the_table() -> None:
    app = make_sim().app()
    routes = {
        (route.method, route.resource.canonical.removeprefix(API_PREFIX))
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith(API_PREFIX + "/")
    }

    assert routes  # the API is registered at all
    unscoped = [route for route in routes if required_scope(*route) is None]
    assert unscoped == []
    assert {(row.method, row.path) for row in ROUTE_SCOPES} == routes


# --- one table, four places ------------------------------------------------------------------


def contracts_rows() -> set[tuple[str, str, str]]:
    text = CONTRACTS.read_text()
    section = text[text.index("### 4.1 OAuth scopes") : text.index("## 5. ")]
    row = re.compile(r"^\| `(GET|PUT|POST|DELETE) (/\S+)` \| `(ZohoSubscriptions\.[\w.]+)` \|")
    return {(m[1], m[2], m[3]) for line in section.splitlines() if (m := row.match(line))}


def test_contracts_scope_table_is_the_simulators_route_table() -> None:
    documented = contracts_rows()

    assert documented == {(row.method, row.path, row.scope) for row in ROUTE_SCOPES}


def test_the_clients_scope_table_is_the_contracts_table() -> None:
    documented = {(f"{method} {path}", scope) for method, path, scope in contracts_rows()}

    assert documented == set(SCOPE_OF_ENDPOINT.items())


def test_setup_guide_asks_for_exactly_the_documented_scopes() -> None:
    text = (DOCS / "zoho-setup.md").read_text()
    lists = [line.strip() for line in text.splitlines() if line.strip().startswith("ZohoSub")]

    assert len(lists) == 1
    assert set(lists[0].split(",")) == DOCUMENTED == set(REQUIRED_SCOPES) == ALL_SCOPES


# --- the broker names what is missing --------------------------------------------------------


async def test_a_read_without_its_scope_is_an_error_naming_the_scope(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim(scopes=without(PLANS_READ))
    async with billing_client(sim, aiohttp_server) as billing:
        with capture_logs() as logs, pytest.raises(BillingScopeMissing) as refused:
            await billing.list_plans()

    assert refused.value.scope == PLANS_READ
    assert refused.value.status == 502
    assert f"lacks the scope {PLANS_READ}" in refused.value.message
    assert "docs/zoho-setup.md" in (refused.value.hint or "")
    assert refused.value.as_dict()["error"] == "billing_scope_missing"
    missing = [line for line in logs if line["event"] == "billing.scope_missing"]
    assert [(line["scope"], line["log_level"]) for line in missing] == [(PLANS_READ, "error")]


async def test_a_token_known_to_lack_a_scope_is_not_refreshed_again_for_the_next_call(
    aiohttp_server: ServerFactory,
) -> None:
    sim = make_sim(scopes=without(PLANS_READ, ADDONS_READ))
    async with billing_client(sim, aiohttp_server) as billing:
        with pytest.raises(BillingScopeMissing):
            await billing.list_plans()
        after_first = sim.token_requests
        with pytest.raises(BillingScopeMissing) as second:
            await billing.list_addons()
        read = await billing.request("GET", "/subscriptions")

    assert after_first == 2  # the first token, and one refresh to tell a scope from an expiry
    assert sim.token_requests == 2  # Zoho allows about five refreshes a minute
    assert second.value.scope == ADDONS_READ
    assert read["code"] == 0


async def test_a_token_without_webhooks_read_fails_the_event_backfill_naming_the_scope(
    make_world: WorldFactory,
) -> None:
    world = await make_world(billing_simulator={"scopes": without(WEBHOOKS_READ)})
    world.sim.drop_all_webhooks()
    world.sim.subscribe(STANDARD_CODE, zuid="61000000001", zgid="71000000001")

    with capture_logs() as logs:
        report = await run_reconciliation(world.app[reconcile_key])

    assert report.outcome is RunOutcome.FAILED
    assert report.error is not None
    assert f"lacks the scope {WEBHOOKS_READ}" in report.error
    runs = await world.rows("SELECT outcome, error FROM reconcile_runs")
    assert [row["outcome"] for row in runs] == ["failed"]
    assert WEBHOOKS_READ in runs[0]["error"]
    assert any(line.get("scope") == WEBHOOKS_READ for line in logs)
    assert world.calls() == []  # nothing was guessed or sent to the platform


async def test_with_every_scope_the_event_backfill_runs(make_world: WorldFactory) -> None:
    world = await make_world()

    report = await run_reconciliation(world.app[reconcile_key])

    assert (report.outcome, report.error) == (RunOutcome.DONE, None)
