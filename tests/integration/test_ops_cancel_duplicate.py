"""Resolving a conflict from the console's org view: the operator cancels, in billing, the
duplicate the platform does not have, after a confirmation; CSRF-protected and audited under the
org. The subscription the platform keeps is never cancelled from here (the platform holds one per
org, and deliveries of two subscriptions are not ordered). Driven through the real app against
both simulators, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from broker.delivery.reconcile import RunOutcome, run_reconciliation
from broker.web.appkeys import reconcile_key
from tests.support.ops import OPS, audit_rows, sign_in
from tests.support.pages import (
    OWNER_ZGID,
    Client,
    PageWorld,
    WorldFactory,
)
from tests.support.postgres import store_section

ACTION = "ops.cancel_duplicate"


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """The action writes through the store: both backends."""
    return store_section(store_url)


@dataclass
class Conflict:
    world: PageWorld
    ops: Client
    csrf: str
    kept: str
    duplicate: str

    @property
    def path(self) -> str:
        return f"/ops/orgs/{OWNER_ZGID}/cancel_duplicate"

    async def post(self, **fields: str) -> Any:
        form = {"csrf": self.csrf, "subscription_id": self.duplicate, **fields}
        return await self.ops.post(self.path, data=form, allow_redirects=False)


@pytest.fixture
async def conflict(make_world: WorldFactory) -> Conflict:
    """The owner bought through the page (the platform has it); billing then made a second
    subscription for the same org, which the broker holds back as a duplicate."""
    world = await make_world(billing={"read_cache_seconds": 0}, ops=OPS)
    owner = await world.signed_in()
    kept, duplicate = await world.bought_twice(owner)
    ops = (await world.browser()).client
    csrf = await sign_in(ops)
    return Conflict(world, ops, csrf, kept, duplicate)


def live_on_platform(world: PageWorld, zgid: str) -> list[str]:
    """The subscriptions the platform holds live for ``zgid``, replaying its applied calls."""
    live: dict[str, bool] = {}
    for call in world.calls():
        if call.zgid != zgid:
            continue
        sid = call.body.get("subscription_id") if isinstance(call.body, dict) else None
        key = sid or "?"
        live[key] = call.method != "DELETE"
    return [sid for sid, on in live.items() if on]


async def test_the_org_view_offers_resolve_beside_the_duplicate_only(conflict: Conflict):
    view = await conflict.ops.get(f"/ops/orgs/{OWNER_ZGID}")
    text = await view.text()

    assert view.status == 200, text
    assert f'id="resolve-{conflict.duplicate}"' in text
    assert f'id="resolve-{conflict.kept}"' not in text


async def test_the_confirmation_names_what_ends_what_stays_and_money(conflict: Conflict):
    page = await conflict.ops.get(conflict.path, params={"subscription_id": conflict.duplicate})
    text = await page.text()

    assert page.status == 200, text
    assert f"cancel duplicate {conflict.duplicate}" in text
    assert f"subscription {conflict.kept}" in text
    assert "Nothing already charged is refunded from here" in text
    assert f'name="csrf" value="{conflict.csrf}"' in text
    assert (
        conflict.world.sim.subscriptions[conflict.duplicate].status == "live"
    )  # a GET changes nothing


async def test_confirmed_resolve_cancels_the_duplicate_in_billing_and_the_platform_keeps_one(
    conflict: Conflict,
):
    world = conflict.world

    answer = await conflict.post(when="now", confirm="yes")
    await world.settle()

    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"].startswith(f"/ops/orgs/{OWNER_ZGID}?notice=")
    assert world.sim.subscriptions[conflict.duplicate].status == "cancelled"
    assert world.sim.subscriptions[conflict.kept].status == "live"
    assert [(c.method, c.body["subscription_id"]) for c in world.calls()] == [
        ("POST", conflict.kept)
    ]
    assert live_on_platform(world, OWNER_ZGID) == [conflict.kept]
    [row] = await audit_rows(conflict.ops, ACTION)
    assert (row["zuid"], row["zgid"], row["result"]) == ("ops:operator", OWNER_ZGID, "ok")
    assert row["subscription_id"] == conflict.duplicate
    detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    assert detail == {"duplicate": conflict.duplicate, "kept": [conflict.kept], "when": "now"}
    view = await (await conflict.ops.get(f"/ops/orgs/{OWNER_ZGID}")).text()
    assert f'id="resolve-{conflict.duplicate}"' not in view  # no longer a duplicate
    assert "ops.cancel_duplicate" in view  # the org's own audit list shows it
    listed = await conflict.ops.get("/ops/audit", params={"type": ACTION})
    assert listed.status == 200, await listed.text()
    assert f'<a href="/ops/orgs/{OWNER_ZGID}">{OWNER_ZGID}</a>' in await listed.text()


async def test_after_resolve_a_reconciliation_still_sends_nothing_for_the_cancelled_duplicate(
    conflict: Conflict,
):
    world = conflict.world
    assert (await conflict.post(when="term_end", confirm="yes")).status == 303
    await world.settle()

    report = await run_reconciliation(world.app[reconcile_key])
    await world.deliveries_finished()

    assert report.outcome is RunOutcome.DONE
    assert world.sim.subscriptions[conflict.duplicate].status == "non_renewing"
    assert live_on_platform(world, OWNER_ZGID) == [conflict.kept]
    assert [c.method for c in world.calls()] == ["POST"]


async def test_a_forged_resolve_is_refused_audited_and_changes_nothing(conflict: Conflict):
    forged = await conflict.ops.post(
        conflict.path,
        data={
            "csrf": "forged",
            "subscription_id": conflict.duplicate,
            "when": "now",
            "confirm": "yes",
        },
        allow_redirects=False,
    )

    assert forged.status == 403
    assert "did not come from the console" in await forged.text()
    assert conflict.world.sim.subscriptions[conflict.duplicate].status == "live"
    [row] = await audit_rows(conflict.ops, ACTION)
    assert (row["result"], row["zgid"]) == ("refused: csrf", OWNER_ZGID)


async def test_the_subscription_the_platform_has_is_never_cancelled_from_here(conflict: Conflict):
    answer = await conflict.post(subscription_id=conflict.kept, when="now", confirm="yes")
    text = await answer.text()

    assert answer.status == 409, text
    assert f"subscription {conflict.kept} is the one the platform has" in text
    assert f"cancel the duplicate ({conflict.duplicate}) instead" in text
    assert conflict.world.sim.subscriptions[conflict.kept].status == "live"
    [row] = await audit_rows(conflict.ops, ACTION)
    assert row["result"] == "refused: kept_subscription"


@pytest.mark.parametrize("named", ["999999999999", "<script>alert(1)</script>", ""])
async def test_an_id_that_is_not_this_orgs_duplicate_is_a_404_that_reveals_nothing(
    conflict: Conflict, named: str
):
    answer = await conflict.post(subscription_id=named, when="now", confirm="yes")
    text = await answer.text()

    assert answer.status == 404, text
    assert "<script>alert" not in text
    assert "is not a duplicate subscription of org" in text
    assert conflict.world.sim.subscriptions[conflict.duplicate].status == "live"
    [row] = await audit_rows(conflict.ops, ACTION)
    assert row["result"] == "refused: not_a_duplicate"


async def test_an_unconfirmed_resolve_asks_again_and_changes_nothing(conflict: Conflict):
    answer = await conflict.post(when="now")
    text = await answer.text()

    assert answer.status == 422, text
    assert "Tick the box to confirm" in text
    assert conflict.world.sim.subscriptions[conflict.duplicate].status == "live"
    assert await audit_rows(conflict.ops, ACTION) == []


async def test_billing_down_says_nothing_changed_and_is_audited(conflict: Conflict):
    conflict.world.sim.go_down()
    answer = await conflict.post(when="now", confirm="yes")
    text = await answer.text()
    conflict.world.sim.come_up()

    assert answer.status == 503, text
    assert "nothing was changed" in text
    assert conflict.world.sim.subscriptions[conflict.duplicate].status == "live"
    [row] = await audit_rows(conflict.ops, ACTION)
    assert row["result"].startswith("failed: ")


async def test_resolve_needs_a_signed_in_operator(make_world: WorldFactory):
    world = await make_world(ops=OPS)
    stranger = (await world.browser()).client
    path = f"/ops/orgs/{OWNER_ZGID}/cancel_duplicate"
    shown = await stranger.get(path, params={"subscription_id": "1"}, allow_redirects=False)
    posted = await stranger.post(
        path, data={"subscription_id": "1", "confirm": "yes"}, allow_redirects=False
    )

    for answer in (shown, posted):
        assert (answer.status, answer.headers["Location"]) == (303, "/ops/login")
    assert await audit_rows(stranger, ACTION) == []
