"""The daily Zoho Billing budget: counted in the store, shared by replicas, spent in order.

Zoho caps calls per organisation per day (docs/contracts.md §4, "Limits"). With
``billing.daily_call_limit`` L: reconciliation stops at 60 % of L, page views show the stored
page labelled "as of" from 80 %, customer actions spend to L. The billing simulator enforces the
same daily limit and answers past it as Zoho does (429, code 1070), so a broker that overspent
would see refusals rather than pass. Clocks are moved, never waited on.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr, ValidationError

from broker.app import create_app
from broker.cli.reconcile import table
from broker.config import BillingSettings, StoreSettings
from broker.core.billing_budget import BudgetRules, CallPriority, budget_day
from broker.core.reconcile import within_event_window
from broker.delivery.daily_budget import DailyBudget
from broker.delivery.reconcile import RunOutcome, run_reconciliation
from broker.errors import BillingBudgetSpent, BillingRateLimited
from broker.store import billing_budget as rows
from broker.store.opening import open_store
from broker.web.appkeys import daily_budget_key, reconcile_key, settings_key, store_key
from tests.support.metrics import parse, value
from tests.support.ops import OPS, sign_in
from tests.support.pages import PROFESSIONAL, Browser, ClientFactory, PageWorld, WorldFactory
from tests.support.postgres import store_section

LIMIT = 60  # a small day: reconciliation stops at 36 calls, page reads at 48
STALE_LABEL = "As of "


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    return store_section(store_url)


RULES = BudgetRules(
    daily_limit=1000,
    per_minute=30,
    page_reads_stale_percent=80,
    background_slow_percent=40,
    background_stop_percent=60,
)


# --- the rules, from the stated thresholds ----------------------------------------------------


def test_each_priority_stops_at_its_stated_share_of_a_standard_day():
    assert RULES.day_ceiling(CallPriority.CUSTOMER) == 1000
    assert RULES.day_ceiling(CallPriority.PAGE_READ) == 800
    assert RULES.day_ceiling(CallPriority.BACKGROUND) == 600


def test_background_keeps_half_the_minute_free_and_a_quarter_once_slowed():
    assert RULES.minute_ceiling(CallPriority.CUSTOMER, used_today=900) == 30
    assert RULES.minute_ceiling(CallPriority.BACKGROUND, used_today=399) == 15
    assert RULES.minute_ceiling(CallPriority.BACKGROUND, used_today=400) == 7


def billing_settings(**overrides: Any) -> BillingSettings:
    return BillingSettings(
        organization_id="1",
        client_id="c",
        client_secret=SecretStr("s"),
        refresh_token=SecretStr("r"),
        **overrides,
    )


def test_an_unknown_time_zone_is_refused_with_what_to_write_instead():
    with pytest.raises(ValidationError) as refused:
        billing_settings(budget_time_zone="Mars/Olympus_Mons")
    assert "is not a time zone name; use an IANA name such as UTC" in str(refused.value)


def test_thresholds_out_of_order_are_refused_background_stops_before_page_reads():
    with pytest.raises(ValidationError) as refused:
        billing_settings(background_stop_percent=90, page_reads_stale_percent=80)
    assert "background work stops before page reads do" in str(refused.value)
    with pytest.raises(ValidationError):
        billing_settings(background_slow_percent=70, background_stop_percent=60)


def test_the_budget_day_ends_at_midnight_in_the_configured_zone():
    # 2026-12-07 23:30 UTC is already 2026-12-08 00:30 in Berlin (UTC+1 in winter).
    at = 1_796_686_200.0  # 2026-12-07T23:30:00Z
    utc = budget_day(at, ZoneInfo("UTC"))
    berlin = budget_day(at, ZoneInfo("Europe/Berlin"))
    assert (utc.name, utc.ends_at) == ("2026-12-07", 1_796_688_000.0)  # 2026-12-08T00:00Z
    assert (berlin.name, berlin.ends_at) == ("2026-12-08", 1_796_770_800.0)  # 12-08T23:00Z


# --- the count, in the store ---------------------------------------------------------------------


def spend(db: Any, priority: CallPriority, rules: BudgetRules = RULES) -> rows.Spend:
    return rows.take_call(
        db, day="2026-12-07", minute="2026-12-07T10:00", rules=rules, priority=priority, now=1.0
    )


async def test_two_store_handles_count_one_day_and_never_pass_the_limit(store_url: str):
    """Two stores on one database are two replicas: their calls add up, and the call that
    would pass the limit is refused and not counted."""
    tiny = BudgetRules(5, 100, 80, 40, 60)
    first, second = (
        open_store(StoreSettings(url=store_url)),
        open_store(StoreSettings(url=store_url)),
    )
    await first.open()
    await second.open()
    try:
        outcomes = []
        for store in [first, second, first, second, first, second]:
            outcomes.append(
                await store.write(partial(spend, priority=CallPriority.CUSTOMER, rules=tiny))
            )
        assert [o.outcome for o in outcomes] == [rows.Spent.COUNTED] * 5 + [rows.Spent.DAY_FULL]
        today = await second.read(partial(rows.budget_today, day="2026-12-07"))
        assert today.used == 5
    finally:
        await first.close()
        await second.close()


# --- billing's own quota answer ----------------------------------------------------------------


async def test_a_quota_answer_is_not_retried_and_no_replica_calls_until_the_day_ends(
    make_world: WorldFactory,
):
    """Billing answers 429 with code 1070 (its daily limit, reached by calls the broker never
    made: another integration of the same org). With ``quota_hold_seconds = 0`` the call is not
    retried, and every later call, a customer's too, is refused by the broker without reaching
    billing until the day ends."""
    world = await make_world(
        billing={
            "session_call_burst": 1000,
            "max_attempts": 3,
            "read_cache_seconds": 0,
            "quota_hold_seconds": 0,
        }
    )
    owner = await world.signed_in()
    await world.subscribed(owner)
    world.sim.limit_daily_requests(len(world.sim.api_calls))  # the day is spent as of now
    before = len(world.sim.api_calls)
    page = await owner.get("/manage")
    assert page.status == 200
    assert len(world.sim.api_calls) == before + 1  # refused once, never retried
    figures = await world.app[daily_budget_key].figures()
    assert figures.quota_until == budget_day(world.clock(), ZoneInfo("UTC")).ends_at
    assert figures.left == 0
    opened = await owner.submit(
        "/manage/change", {"planid": PROFESSIONAL, "users": 5, "frequency": "monthly"}
    )
    assert opened.status in (429, 503), opened.text
    assert "quota" in opened.text
    assert len(world.sim.api_calls) == before + 1  # the checkout did not reach billing either
    world.clock.advance(figures.quota_until - world.clock() + 1)  # the next budget day
    world.sim.limit_daily_requests(None)
    tomorrow = await world.signed_in()  # the page session of yesterday has ended
    assert STALE_LABEL not in await view(tomorrow)
    assert len(world.sim.api_calls) > before + 1


async def test_by_default_a_quota_answer_holds_calls_five_minutes_then_one_call_tries_again(
    make_world: WorldFactory,
):
    """The default hold (300 s, as the setting's comment gives it): a refusal that was really a
    per-minute limit must not stop checkouts for the rest of the day. Within the hold nothing
    reaches billing; after it one call tries, and a lifted limit serves pages again."""
    world = await make_world(
        billing={"session_call_burst": 1000, "max_attempts": 3, "read_cache_seconds": 0}
    )
    owner = await world.signed_in()
    await world.subscribed(owner)
    world.sim.limit_daily_requests(len(world.sim.api_calls))
    before = len(world.sim.api_calls)
    assert (await owner.get("/manage")).status == 200
    assert len(world.sim.api_calls) == before + 1  # refused once, never retried
    figures = await world.app[daily_budget_key].figures()
    assert figures.quota_until is not None
    assert abs(figures.quota_until - (world.clock() + 300)) < 5  # the page world's clock runs
    world.clock.advance(290)
    assert (await owner.get("/manage")).status == 200
    assert len(world.sim.api_calls) == before + 1  # still held: nothing reached billing
    world.clock.advance(15)
    world.sim.limit_daily_requests(None)  # the limit was lifted meanwhile
    assert STALE_LABEL not in await view(owner)
    assert len(world.sim.api_calls) > before + 1
    assert (await world.app[daily_budget_key].figures()).quota_until is None


# --- the order: reconciliation, then page reads, never a checkout -------------------------------


def budgeted(**billing: Any) -> dict[str, Any]:
    return {
        "billing": {
            "daily_call_limit": LIMIT,
            "calls_per_minute": 1000,
            "read_cache_seconds": 0,  # every view reads billing: the test spends by viewing
            "session_call_burst": 1000,
            "session_calls_per_minute": 1000,
            **billing,
        },
        "billing_simulator": {"requests_per_day": LIMIT},
        "ops": OPS,
    }


async def view(browser: Browser) -> str:
    page = await browser.get("/manage")
    assert page.status == 200, page.text
    assert 'class="status status-live"' in page.text  # the subscription is always shown
    return page.text


async def spend_in_order(world: PageWorld, viewers: list[Browser], owner: Browser) -> None:
    """View the page (taking turns between ``viewers``, which may be on different replicas)
    until reconciliation's share is spent, then until pages go stale; then change the plan."""
    budget = world.app[daily_budget_key]
    turn = 0
    while not (await budget.figures()).background_stopped:
        text = await view(viewers[turn % len(viewers)])
        assert STALE_LABEL not in text  # pages still read billing below 80 %
        turn += 1
    used = (await budget.figures()).used
    assert LIMIT * 0.6 <= used < LIMIT * 0.8

    sent = len(world.sim.api_calls)
    # On the last viewer's replica: with two, not the one whose page views spent the most.
    reconciler = viewers[-1].client.app[reconcile_key]
    report = await run_reconciliation(reconciler, trigger="test")
    assert report.outcome is RunOutcome.BUDGET_SPENT
    assert "stopped for today" in str(report.error)
    assert len(world.sim.api_calls) == sent  # reconciliation made no call at all
    [run] = await world.rows("SELECT id, outcome, error FROM reconcile_runs")
    assert run["outcome"] == "budget_spent"
    operator = await world.browser()  # the operator sees that it stopped, and why
    await sign_in(operator.client)
    shown = (await operator.get(f"/ops/reconcile/{run['id']}")).text
    assert "budget_spent" in shown
    assert "Why it stopped" in shown
    assert "stopped for today" in shown
    assert (
        "Reconciliation and backfill</dt><dd>stopped for today" in (await operator.get("/ops")).text
    )

    while STALE_LABEL not in (text := await view(viewers[turn % len(viewers)])):
        turn += 1
    assert "Buying, changing and cancelling still work." in text
    # Labelled with when the stored copy was last brought up to date (the subscription's row).
    [row] = await world.rows("SELECT MAX(updated_at) AS at FROM subscriptions")
    as_of = datetime.fromtimestamp(row["at"], UTC).strftime("%d %b %Y, %H:%M UTC")
    assert f"As of {as_of}:" in text, re.findall(r"As of [^<]*", text)
    sent = len(world.sim.api_calls)
    assert STALE_LABEL in await view(viewers[(turn + 1) % len(viewers)])
    assert len(world.sim.api_calls) == sent  # a stale page costs nothing

    opened = await world.open_checkout(owner, planid=PROFESSIONAL, users=5, action="change")
    back = await world.come_back(owner, await world.pay(opened.hostedpage_id))
    assert back.status == 303, back.text
    await world.platform.wait_until(lambda p: any(c.method == "PUT" for c in p.applied))
    change = [c for c in world.calls() if c.method == "PUT"][-1]
    assert change.planid == PROFESSIONAL
    assert (await budget.figures()).used <= LIMIT
    assert not [c for c in world.sim.api_calls if c.path.endswith("/events")]  # never backfilled


async def test_a_small_day_stops_reconciliation_first_then_page_reads_and_a_checkout_goes_through(
    make_world: WorldFactory,
):
    world = await make_world(**budgeted())
    owner = await world.signed_in()
    await world.subscribed(owner)
    await spend_in_order(world, [owner], owner)


@pytest.mark.postgresql
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL
async def test_two_replicas_sharing_one_database_spend_one_budget_in_the_same_order(
    make_world: WorldFactory, aiohttp_client: ClientFactory
):
    world = await make_world(**budgeted())
    owner = await world.signed_in()
    await world.subscribed(owner)
    second = TestServer(create_app(world.app[settings_key], clock=world.clock))
    there = Browser(await aiohttp_client(second))
    entered = await there.enter()
    assert entered.status == 303, entered.text
    assert second.app[store_key] is not world.app[store_key]  # its own store handle
    await spend_in_order(world, [owner, there], owner)
    # The second replica sees the same day's count.
    assert (await second.app[daily_budget_key].figures()).used == (
        await world.app[daily_budget_key].figures()
    ).used


# --- 180 days ------------------------------------------------------------------------------------


def test_a_day_within_180_days_is_read_as_asked_and_an_older_one_moves_with_a_reason():
    today = date(2026, 6, 10)
    assert within_event_window(date(2025, 12, 12), today) == (date(2025, 12, 12), None)
    oldest, note = within_event_window(date(2025, 1, 1), today)
    assert oldest == date(2025, 12, 12)  # 2026-06-10 minus 180 days
    assert note is not None
    assert "180 days" in note
    assert "2025-01-01" in note
    assert "state sweep" in note


async def test_reconcile_since_beyond_180_days_says_so_and_sweeps_current_state(
    make_world: WorldFactory,
):
    world = await make_world()
    owner = await world.signed_in()
    await world.subscribed(owner)
    today = datetime.fromtimestamp(world.clock(), UTC).date()
    report = await run_reconciliation(
        world.app[reconcile_key], since=today - timedelta(days=400), trigger="test"
    )
    assert report.outcome is RunOutcome.DONE
    assert report.since == (today - timedelta(days=180)).isoformat()
    printed = table(report)
    assert "Zoho Billing keeps events for 180 days" in printed
    assert f"events since {report.since}" in printed
    assert report.counts.subscriptions_read >= 1  # the state sweep read billing's list
    listed = [c for c in world.sim.api_calls if c.path.endswith("/subscriptions")]
    assert listed


# --- background work slows down before it stops --------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_background_calls_wait_for_the_next_minute_past_their_share_and_stop_at_60_percent(
    tmp_path: Path,
):
    """10 calls a day, 4 a minute: background work may make 2 a minute (half), 1 a minute
    once 4 calls are counted (40 %), and none once 6 are (60 %). It waits rather than fail
    until then; people's calls never wait."""
    settings = billing_settings(daily_call_limit=10, calls_per_minute=4)
    clock = Clock(1_796_637_600.0)  # 2026-12-07T10:00:00Z
    store = open_store(StoreSettings(url=f"sqlite:///{tmp_path / 'budget.db'}"))
    await store.open()
    try:
        budget = DailyBudget(store, settings, clock, clock.sleep)
        for _ in range(6):
            await budget.admit(CallPriority.BACKGROUND)
        # Minute 1: two calls, then a wait of 60 s; minute 2: two more (4 counted = 40 %);
        # then one a minute.
        assert clock.slept == [60.0, 60.0, 60.0]
        with pytest.raises(BillingBudgetSpent) as stopped:
            await budget.admit(CallPriority.BACKGROUND)
        assert stopped.value.details["reason"] == "day_full"
        assert (await budget.figures()).background_stopped
        await budget.admit(CallPriority.PAGE_READ)  # 7 of 10: page reads go on to 8
        await budget.admit(CallPriority.PAGE_READ)
        with pytest.raises(BillingBudgetSpent):
            await budget.admit(CallPriority.PAGE_READ)
        await budget.admit(CallPriority.CUSTOMER)  # the minute's 4th call (10:03)
        with pytest.raises(BillingBudgetSpent) as busy:  # people wait for the minute too
            await budget.admit(CallPriority.CUSTOMER)
        assert busy.value.details["reason"] == "minute_full"
        assert busy.value.retry_after == pytest.approx(60.0)
        clock.now += 60  # 10:04
        await budget.admit(CallPriority.CUSTOMER)  # the day's 10th
        with pytest.raises(BillingBudgetSpent) as spent:
            await budget.admit(CallPriority.CUSTOMER)
        assert spent.value.details["reason"] == "day_full"
        assert spent.value.retry_after == pytest.approx(14 * 3600 - 240)  # to midnight UTC
        assert (await budget.figures()).used == 10
    finally:
        await store.close()


# --- the figures, where the operator looks -------------------------------------------------------


async def test_metrics_and_the_ops_home_show_the_calls_billing_received_today(
    make_world: WorldFactory,
):
    world = await make_world(**budgeted())
    owner = await world.signed_in()
    await world.subscribed(owner)
    await view(owner)
    received = len(world.sim.api_calls)  # what billing itself counted
    assert received > 0

    scraper = await world.browser()
    samples = parse((await scraper.get("/metrics")).text)
    assert value(samples, "broker_billing_calls_today") == received
    assert value(samples, "broker_billing_calls_left") == LIMIT - received
    assert value(samples, "broker_billing_daily_call_limit") == LIMIT

    await sign_in(scraper.client)
    home = (await scraper.get("/ops")).text
    assert f"<dt>Used</dt><dd>{received} of {LIMIT}</dd>" in home
    assert f"<dt>Left</dt><dd>{LIMIT - received}</dd>" in home
    assert "<dt>Reconciliation and backfill</dt><dd>running</dd>" in home


async def test_a_quota_answer_asking_for_more_than_a_day_is_held_for_a_day(tmp_path: Path):
    clock = Clock(1_796_637_600.0)
    store = open_store(StoreSettings(url=f"sqlite:///{tmp_path / 'budget.db'}"))
    await store.open()
    try:
        budget = DailyBudget(store, billing_settings(), clock, clock.sleep)
        await budget.quota_answered(BillingRateLimited("quota", retry_after=1e12, zoho_code=1070))
        assert (await budget.figures()).quota_until == clock.now + 86_400
        with pytest.raises(BillingBudgetSpent) as refused:
            await budget.admit(CallPriority.CUSTOMER)
        assert refused.value.details["reason"] == "quota_answered"
    finally:
        await store.close()
