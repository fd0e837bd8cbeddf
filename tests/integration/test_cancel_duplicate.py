"""Cancelling the duplicate: when billing holds two subscriptions that bill for one org, the
owner cancels the one the app does not use from the page, after a confirmation that says which
one ends, which stays and what happens to money. Forged, replayed and other orgs' requests are
refused and audited, and billing is never asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.pages import (
    MEMBER_ZUID,
    OTHER_EMAIL,
    OTHER_ZGID,
    OTHER_ZUID,
    OWNER_ZGID,
    OWNER_ZUID,
    Browser,
    PageWorld,
    WorldFactory,
    visitor,
)
from tests.support.postgres import store_section

NO_CACHE = {"read_cache_seconds": 0}


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Audit rows and the conflict's marks live in the store: both backends."""
    return store_section(store_url)


@dataclass
class Conflict:
    world: PageWorld
    owner: Browser
    kept: str
    duplicate: str

    def cancels(self) -> list[str]:
        """Subscriptions billing was asked to cancel."""
        return [
            r.path.split("/")[2]
            for r in self.world.sim.api_requests
            if r.method == "POST" and r.path.endswith("/cancel")
        ]


@pytest.fixture
async def conflict(make_world: WorldFactory) -> Conflict:
    world = await make_world(billing=NO_CACHE)
    owner = await world.signed_in()
    kept, duplicate = await world.bought_twice(owner)
    return Conflict(world, owner, kept, duplicate)


async def test_conflict_page_says_which_subscription_each_button_acts_on(conflict: Conflict):
    page = await conflict.owner.get("/manage")

    assert page.status == 200
    assert f"/manage/cancel_duplicate?subscription_id={conflict.duplicate}" in page.text
    assert f"Cancel the duplicate (subscription {conflict.duplicate})" in page.text
    assert f"Cancel subscription {conflict.kept} (the one the app uses)" in page.text
    assert "These buttons act on the subscription the app uses" in page.text


async def test_confirmation_names_what_is_cancelled_what_stays_and_the_money(conflict: Conflict):
    form = await conflict.owner.get(
        "/manage/cancel_duplicate", params={"subscription_id": conflict.duplicate}
    )

    assert form.status == 200, form.text
    assert f"subscription {conflict.duplicate}), the duplicate" in form.text
    assert f"subscription {conflict.kept}), the one the app uses" in form.text
    assert "refunds nothing already charged" in form.text
    assert conflict.cancels() == []  # showing the confirmation changes nothing


async def test_owner_cancels_exactly_the_duplicate_and_the_app_keeps_its_subscription(
    conflict: Conflict,
):
    world = conflict.world

    done = await conflict.owner.submit(
        "/manage/cancel_duplicate",
        {"subscription_id": conflict.duplicate, "when": "now", "confirm": "yes"},
    )

    assert done.status == 303, done.text
    assert conflict.cancels() == [conflict.duplicate]
    assert world.sim.subscriptions[conflict.duplicate].status == "cancelled"
    assert world.sim.subscriptions[conflict.kept].status == "live"
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]  # the kept one's Add, nothing else
    page = await conflict.owner.get("/manage")
    assert "paying for two subscriptions" not in page.text
    assert f"duplicate subscription {conflict.duplicate} was cancelled" in page.text
    [row] = await world.audit("cancel_duplicate_now")
    assert row["result"] == "ok"
    assert row["subscription_id"] == conflict.duplicate
    assert row["zuid"] == OWNER_ZUID
    metrics = (await conflict.owner.get("/metrics")).text
    assert "broker_subscription_conflicts 0.0" in metrics


async def test_unconfirmed_cancel_of_the_duplicate_is_shown_again_and_changes_nothing(
    conflict: Conflict,
):
    again = await conflict.owner.submit(
        "/manage/cancel_duplicate", {"subscription_id": conflict.duplicate, "when": "now"}
    )

    assert again.status == 422
    assert "Tick the box to confirm" in again.text
    assert conflict.cancels() == []


async def test_cancel_duplicate_without_the_csrf_token_is_refused(conflict: Conflict):
    forged = await conflict.owner.post(
        "/manage/cancel_duplicate",
        data={"subscription_id": conflict.duplicate, "when": "now", "confirm": "yes"},
    )

    assert forged.status == 403
    assert "did not come from this page" in forged.text
    assert conflict.cancels() == []
    [row] = await conflict.world.audit("cancel_duplicate")
    assert row["result"] == "refused: csrf"


async def test_the_kept_subscription_cannot_be_cancelled_as_a_duplicate(conflict: Conflict):
    refused = await conflict.owner.submit(
        "/manage/cancel_duplicate",
        {"subscription_id": conflict.kept, "when": "now", "confirm": "yes"},
    )

    assert refused.status == 404
    assert "not a duplicate subscription of your organisation" in refused.text
    assert conflict.cancels() == []
    [row] = await conflict.world.audit("cancel_duplicate")
    assert row["result"] == "refused: not_a_duplicate"


async def test_another_orgs_user_cannot_cancel_the_duplicate(conflict: Conflict):
    stranger = await conflict.world.signed_in(
        visitor(OTHER_ZUID, OTHER_ZGID, email=OTHER_EMAIL, display_name="Eve")
    )

    shown = await stranger.get(
        "/manage/cancel_duplicate", params={"subscription_id": conflict.duplicate}
    )
    posted = await stranger.submit(
        "/manage/cancel_duplicate",
        {"subscription_id": conflict.duplicate, "when": "now", "confirm": "yes"},
    )

    assert shown.status == 404
    assert posted.status == 404
    assert conflict.duplicate not in posted.text.replace("subscription_id", "")
    assert conflict.cancels() == []
    rows = await conflict.world.audit("cancel_duplicate")
    assert [(r["zgid"], r["result"]) for r in rows] == [
        (OTHER_ZGID, "refused: not_a_duplicate"),
        (OTHER_ZGID, "refused: not_a_duplicate"),
    ]


async def test_a_member_who_is_not_the_billing_owner_cannot_cancel_the_duplicate(
    conflict: Conflict,
):
    member = await conflict.world.signed_in(visitor(MEMBER_ZUID, OWNER_ZGID, email=None))

    page = await member.get("/manage")
    posted = await member.submit(
        "/manage/cancel_duplicate",
        {"subscription_id": conflict.duplicate, "when": "now", "confirm": "yes"},
    )

    assert "/manage/cancel_duplicate" not in page.text
    assert posted.status == 403
    assert conflict.cancels() == []


async def test_a_replayed_cancel_of_the_duplicate_is_refused_once_it_is_cancelled(
    conflict: Conflict,
):
    fields = {"subscription_id": conflict.duplicate, "when": "now", "confirm": "yes"}
    first = await conflict.owner.submit("/manage/cancel_duplicate", fields)
    assert first.status == 303, first.text

    replayed = await conflict.owner.submit("/manage/cancel_duplicate", fields)

    assert replayed.status == 404
    assert conflict.cancels() == [conflict.duplicate]
