"""Sparing the vendor's billing quota: Zoho Billing allows about 100 calls a
minute per billing org, shared by every customer's page.

Counted on the billing simulator (a real HTTP fake that records every API call): concurrent views
of one org share one read, reloads within ``billing.read_cache_seconds`` make none, each page
session has a call budget, and a 429 from billing shows a friendly page and is honoured (nobody
calls billing again before its Retry-After). The broker's clock is moved, never waited on.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.clients.billing_quota import CallBudget, Read, SharedReads
from broker.web.appkeys import org_reads_key
from tests.support.basics import eventually
from tests.support.pages import (
    OWNER_ZGID,
    OWNER_ZUID,
    STANDARD_CODE,
    Browser,
    Page,
    PageWorld,
    WorldFactory,
)

READS = ("GET", "/subscriptions/")


def reads(world: PageWorld) -> int:
    """Subscriptions billing has been asked for so far."""
    return len(world.sim.calls(*READS))


async def overview(browser: Browser) -> Page:
    page = await browser.get("/manage")
    assert page.status == 200, page.text
    assert 'class="status status-live"' in page.text  # the subscription is always shown
    return page


async def subscribed_in_billing(world: PageWorld) -> str:
    """A live subscription of the owner's org, bought without a page session (no budget
    spent), and known to the broker through billing's webhooks."""
    subscription = world.sim.subscribe(STANDARD_CODE, quantity=5, zuid=OWNER_ZUID, zgid=OWNER_ZGID)
    await world.settle()
    return subscription.subscription_id


# --- one read per org, shared ------------------------------------------------------------------


async def test_concurrent_views_of_one_org_make_one_billing_read(make_world: WorldFactory):
    # No reuse over time at all: only sharing the read in flight can make this one call.
    world = await make_world(billing={"read_cache_seconds": 0})
    await subscribed_in_billing(world)
    browsers = [await world.signed_in() for _ in range(8)]
    before = reads(world)
    shared = world.app[org_reads_key]
    world.sim.hold()  # billing keeps its first answer until all eight views are waiting
    views = [asyncio.ensure_future(overview(browser)) for browser in browsers]
    await eventually(lambda: world.sim.held_requests == 1 and shared.waiting(OWNER_ZGID) == 8)
    world.sim.release()
    pages = await asyncio.gather(*views)
    assert len(pages) == 8
    assert reads(world) == before + 1


async def test_reloads_within_the_ttl_make_no_new_read_and_one_after_it(world: PageWorld):
    await subscribed_in_billing(world)
    owner = await world.signed_in()
    before = reads(world)
    for _ in range(5):
        await overview(owner)
    assert reads(world) == before + 1
    world.clock.advance(29)
    await overview(owner)
    assert reads(world) == before + 1  # 29 s later: still the same read (TTL 30 s)
    world.clock.advance(2)
    await overview(owner)
    assert reads(world) == before + 2


# --- a budget per page session -----------------------------------------------------------------


async def test_a_session_past_its_budget_sees_the_stored_view_with_a_notice(
    make_world: WorldFactory,
):
    world = await make_world(
        billing={"read_cache_seconds": 0, "session_call_burst": 2, "session_calls_per_minute": 1}
    )
    await subscribed_in_billing(world)
    owner = await world.signed_in()
    before = reads(world)
    for _ in range(2):
        await overview(owner)
    assert reads(world) == before + 2
    page = await overview(owner)
    assert reads(world) == before + 2  # not read again
    assert "You have reloaded this page often" in page.text
    assert "Reload in a minute" in page.text
    other = await world.signed_in()  # another session has its own budget
    await overview(other)
    assert reads(world) == before + 3
    world.clock.advance(60)
    page = await overview(owner)
    assert reads(world) == before + 4
    assert "reloaded this page often" not in page.text


async def test_a_session_past_its_budget_is_asked_to_wait_before_acting(
    make_world: WorldFactory,
):
    world = await make_world(billing={"session_call_burst": 2, "session_calls_per_minute": 1})
    live = await subscribed_in_billing(world)
    owner = await world.signed_in()
    await overview(owner)  # one call
    cancelled = await owner.submit("/manage/cancel", {"when": "term_end", "confirm": "yes"})
    assert (cancelled.status, cancelled.location) == (303, "/manage")  # the second call
    before = len(world.sim.api_calls)
    page = await owner.submit("/manage/reactivate")
    assert page.status == 429, page.text
    assert page.headers["Retry-After"] == "60"
    assert "Please wait a moment" in page.text
    assert "try again in a minute" in page.text
    assert len(world.sim.api_calls) == before
    assert world.sim.subscriptions[live].status == "non_renewing"
    [audit] = await world.audit("reactivate")
    assert audit["result"] == "refused: session_over_budget"


# --- billing says 429 --------------------------------------------------------------------------


async def test_billing_429_on_the_overview_is_a_friendly_notice_and_its_retry_after_is_honoured(
    make_world: WorldFactory,
):
    world = await make_world(billing={"read_cache_seconds": 0})
    await subscribed_in_billing(world)
    owner = await world.signed_in()
    before = len(world.sim.api_calls)
    world.sim.fail_next(1, 429, retry_after=40)
    page = await overview(owner)
    assert "Billing is busy right now" in page.text
    assert "try again in 40 seconds" in page.text
    assert len(world.sim.api_calls) == before + 1
    world.clock.advance(20)
    page = await overview(owner)
    assert "try again in 20 seconds" in page.text or "try again in 19 seconds" in page.text
    assert len(world.sim.api_calls) == before + 1  # nobody calls during the wait
    world.clock.advance(21)
    page = await overview(owner)
    assert "Billing is busy" not in page.text
    # Once the wait is over: the look-up lists the customer's subscriptions, then reads the one.
    assert len(world.sim.api_calls) == before + 3


async def test_billing_429_on_an_action_is_a_503_page_with_retry_after_and_nothing_changed(
    world: PageWorld, owner: Browser, live: str
):
    world.sim.fail_next(1, 429, retry_after=40)
    page = await owner.submit("/manage/cancel", {"when": "now", "confirm": "yes"})
    assert page.status == 503, page.text
    assert page.headers["Retry-After"] == "40"
    assert "Billing is busy right now" in page.text
    assert "Nothing was changed" in page.text
    assert world.sim.subscriptions[live].status == "live"
    before = len(world.sim.api_calls)
    again = await owner.submit("/manage/cancel", {"when": "now", "confirm": "yes"})
    assert again.status == 503
    assert len(world.sim.api_calls) == before  # refused here until the wait is over
    assert [a["result"] for a in await world.audit("cancel_now")] == [
        "failed: billing_rate_limited",
        "failed: billing_rate_limited",
    ]


# --- the tools themselves, on a hand-moved clock -----------------------------------------------


class HandClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_budget_spends_refills_at_its_rate_and_says_how_long_to_wait():
    clock = HandClock()
    budget = CallBudget(burst=3, per_minute=6, clock=clock)  # a token every 10 s
    assert budget.take("s1", 2) is None
    assert budget.take("s1", 1) is None
    assert budget.take("s1", 1) == pytest.approx(10.0)
    assert budget.take("s2", 3) is None  # each session has its own
    clock.now += 10
    assert budget.take("s1", 1) is None
    assert budget.take("s1", 1) == pytest.approx(10.0)
    clock.now += 600  # refills up to the burst, no further
    assert budget.take("s1", 3) is None
    assert budget.take("s1", 1) == pytest.approx(10.0)


async def test_a_failed_read_is_not_reused_and_a_waiter_leaving_does_not_cancel_it():
    clock = HandClock()
    shared: SharedReads[str] = SharedReads(ttl_seconds=30, clock=clock)
    calls: list[str] = []
    release = asyncio.Event()

    async def failing() -> Read[str]:
        calls.append("failing")
        return Read("billing away", complete=False)

    assert await shared.get("org", failing) == "billing away"
    assert await shared.get("org", failing) == "billing away"
    assert calls == ["failing", "failing"]  # tried again by the next view

    async def slow() -> Read[str]:
        calls.append("slow")
        await release.wait()
        return Read("read", complete=True)

    leaver = asyncio.ensure_future(shared.get("org", slow))
    stayer = asyncio.ensure_future(shared.get("org", slow))
    await asyncio.sleep(0)  # let both join the one read (no time passes)
    leaver.cancel()
    release.set()
    assert await stayer == "read"
    assert calls.count("slow") == 1
    assert await shared.get("org", slow) == "read"  # reused within the TTL
    clock.now += 30
    release.set()
    assert await shared.get("org", slow) == "read"
    assert calls.count("slow") == 2
