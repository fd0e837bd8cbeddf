"""The console's org view: both sides of one org side by side, what the broker holds and what
billing holds (read live, bounded), linked from the conflicts on the overview. Billing that
cannot be asked is said plainly; the broker's side is still shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.basics import EMAIL
from tests.support.ops import OPS, sign_in
from tests.support.pages import (
    OWNER_ZGID,
    OWNER_ZUID,
    STANDARD_CODE,
    Client,
    PageWorld,
    WorldFactory,
)
from tests.support.postgres import store_section

NO_CACHE = {"read_cache_seconds": 0}


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """The org view reads the store: both backends."""
    return store_section(store_url)


@dataclass
class Console:
    world: PageWorld
    ops: Client


@pytest.fixture
async def console(make_world: WorldFactory) -> Console:
    world = await make_world(billing=NO_CACHE, ops=OPS)
    ops = (await world.browser()).client
    await sign_in(ops)
    return Console(world, ops)


def billing_calls(world: PageWorld) -> int:
    return len([r for r in world.sim.api_requests if not r.path.startswith("/oauth")])


async def test_org_view_shows_both_sides_of_a_conflict_and_the_overview_links_to_it(
    console: Console,
):
    world = console.world
    owner = await world.signed_in()
    kept, duplicate = await world.bought_twice(owner)
    [customer_id] = {s.customer.customer_id for s in world.sim.subscriptions.values()}

    home = await (await console.ops.get("/ops")).text()
    before = billing_calls(world)
    view = await console.ops.get(f"/ops/orgs/{OWNER_ZGID}")
    text = await view.text()

    assert f'href="/ops/orgs/{OWNER_ZGID}"' in home
    assert view.status == 200, text
    assert "What billing holds (read now)" in text
    assert f"Customers: {customer_id}" in text
    assert kept in text
    assert duplicate in text
    assert f"conflict: the organisation already has subscription {kept}" in text
    # Each held subscription shows its state beside the reason: the kept one's target was
    # chosen and sent (applied), the duplicate's is held back (conflict).
    assert "<th>State</th><th>Reason</th>" in text
    assert "<td>applied</td>" in text
    assert "<td>conflict</td>" in text
    assert "a duplicate: nothing is sent to the platform for it" in text
    assert "active (acknowledged)" in text
    # One list of the org's one customer: the look-up's bound, no sweep for a known org.
    assert billing_calls(world) - before == 1


async def test_org_view_names_a_subscription_only_billing_has(console: Console):
    world = console.world
    world.sim.drop_next_webhooks(2)  # created, payment: the broker never hears of it
    lost = world.sim.subscribe(STANDARD_CODE, zuid=OWNER_ZUID, zgid=OWNER_ZGID, email=EMAIL)

    text = await (await console.ops.get(f"/ops/orgs/{OWNER_ZGID}")).text()

    assert lost.subscription_id in text
    assert "billing has it, the broker does not" in text
    assert "The broker holds no subscription for this org." in text


async def test_org_view_says_when_billing_cannot_be_asked_and_still_shows_the_broker_side(
    console: Console,
):
    world = console.world
    owner = await world.signed_in()
    kept = await world.subscribed(owner)
    world.sim.go_down()

    view = await console.ops.get(f"/ops/orgs/{OWNER_ZGID}")
    text = await view.text()

    assert view.status == 200, text
    assert "Billing could not be asked just now" in text
    assert "Only the broker&#39;s side is shown." in text
    assert kept in text


async def test_org_view_refuses_an_org_id_that_is_not_digits(console: Console):
    view = await console.ops.get("/ops/orgs/1%3Cscript%3E")

    assert view.status == 400
    assert "is not a zgid" in await view.text()


async def test_org_view_needs_the_operator(console: Console):
    stranger = (await console.world.browser()).client

    view = await stranger.get(f"/ops/orgs/{OWNER_ZGID}", allow_redirects=False)

    assert view.status == 303
    assert view.headers["Location"] == "/ops/login"
