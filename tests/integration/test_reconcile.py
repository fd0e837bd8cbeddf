"""Reconciliation end to end: the real broker, the billing simulator (dropped webhooks,
backdated changes, a slow API) and the Developer Console simulator; deliveries are counted on
the platform. Runs are started through ``run_reconciliation``, as the console and CLI do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from broker.app import create_app
from broker.core.reconcile import DriftKind
from broker.delivery.reconcile import RunOutcome, RunReport, run_on_schedule, run_reconciliation
from broker.simulators.billing import listing
from broker.simulators.billing.inputs import PlanInput, SubscriptionChangeInput
from broker.simulators.billing.listing import EventOrder
from broker.simulators.billing.records import CustomField, Subscription
from broker.store import reconcile as rows
from broker.store.opening import open_store
from broker.web.appkeys import reconcile_key, settings_key, store_key
from tests.support.basics import APP_DOMAIN, eventually
from tests.support.pages import STANDARD_CODE, TODAY, PageWorld, WorldFactory
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


PROFESSIONAL_CODE = f"{APP_DOMAIN}_1002"
FINISHED = ("done", "dead", "superseded")


async def reconcile(world: PageWorld, **options: Any) -> RunReport:
    return await run_reconciliation(world.app[reconcile_key], **options)


async def settled(world: PageWorld) -> None:
    async def finished() -> bool:
        found = await world.rows("SELECT state FROM deliveries")
        return all(row["state"] in FINISHED for row in found)

    await eventually(finished, message="every delivery finished")
    assert await world.rows("SELECT id FROM deliveries WHERE state = 'dead'") == []


def org(n: int) -> dict[str, str]:
    return {"zuid": f"610000{n:05d}", "zgid": f"710000{n:05d}"}


def adds_by_subscription(world: PageWorld) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in world.calls("POST"):
        sid = call.body["subscription_id"]
        counts[sid] = counts.get(sid, 0) + 1
    return counts


async def test_webhooks_dropped_while_up_are_found_and_delivered_once(world: PageWorld) -> None:
    world.sim.drop_all_webhooks()
    subs = [world.sim.subscribe(STANDARD_CODE, quantity=2 + n, **org(n)) for n in range(3)]

    report = await reconcile(world)
    await settled(world)
    again = await reconcile(world)
    await settled(world)

    assert report.outcome is RunOutcome.DONE
    assert {d.kind for d in report.drift} == {DriftKind.MISSED_EVENT}
    assert adds_by_subscription(world) == {s.subscription_id: 1 for s in subs}
    assert [c.body["no_of_users"] for c in world.calls("POST")] == ["2", "3", "4"]
    assert again.drift == []
    assert len(world.calls()) == 3
    sources = await world.rows("SELECT DISTINCT source FROM webhook_events")
    assert sources == [{"source": "reconcile"}]


async def test_fifty_changes_made_while_the_broker_was_down_are_delivered_once(
    world: PageWorld, aiohttp_client: Any
) -> None:
    first = world.sim.subscribe(STANDARD_CODE, quantity=1, **org(0))
    await world.settle()
    settings = world.app[settings_key]
    await world.broker.close()  # the broker is down; billing's webhooks go nowhere
    world.sim.drop_all_webhooks()
    subs = [first] + [world.sim.subscribe(STANDARD_CODE, **org(n)) for n in range(1, 10)]
    changes = 9
    for n in range(41):  # 9 new subscriptions + 41 changes = 50
        sub = subs[n % len(subs)]
        world.sim.state.change(
            sub.subscription_id,
            SubscriptionChangeInput(plan=PlanInput(plan_code=STANDARD_CODE, quantity=n + 2)),
        )
        changes += 1
    assert changes == 50
    restarted = await aiohttp_client(TestServer(create_app(settings, clock=world.clock)))
    world.broker = restarted.server

    report = await reconcile(world)
    await settled(world)
    again = await reconcile(world)
    await settled(world)

    assert report.outcome is RunOutcome.DONE
    assert adds_by_subscription(world) == {s.subscription_id: 1 for s in subs}
    held = {c.body["subscription_id"]: c.body["no_of_users"] for c in world.calls("POST")}
    for call in world.calls("PUT"):
        held[call.body["subscription_id"]] = call.body["no_of_users"]
    assert held == {s.subscription_id: str(s.quantity) for s in subs}
    sent = [(c.method, c.body["subscription_id"], c.body["no_of_users"]) for c in world.calls()]
    assert len(sent) == len(set(sent)), "a state was delivered twice"
    assert again.drift == []
    assert len(world.calls()) == len(sent)


async def test_backdated_change_is_corrected_by_the_sweep(world: PageWorld) -> None:
    sub = world.sim.subscribe(STANDARD_CODE, quantity=3, **org(1))
    await world.settle()
    await settled(world)
    backdated = await world.checkout.post(
        f"/_sim/subscriptions/{sub.subscription_id}/backdate",
        json={"date": "2026-06-01", "plan_code": PROFESSIONAL_CODE},
    )
    assert backdated.status == 200

    report = await reconcile(world)
    await settled(world)

    assert [(d.kind, d.action) for d in report.drift] == [(DriftKind.PLAN, "queued")]
    assert [(c.method, c.planid) for c in world.calls()] == [("POST", "1001"), ("PUT", "1002")]
    stored = await world.rows("SELECT plan_code FROM subscriptions")
    assert stored == [{"plan_code": PROFESSIONAL_CODE}]


async def test_dry_run_reports_differences_and_changes_nothing(world: PageWorld) -> None:
    world.sim.drop_all_webhooks()
    sub = world.sim.subscribe(STANDARD_CODE, quantity=4, **org(2))

    report = await reconcile(world, dry_run=True)

    assert report.dry_run
    assert report.outcome is RunOutcome.DONE
    assert (sub.subscription_id, "would queue") in [
        (d.subscription_id, d.action) for d in report.drift
    ]
    for table in ("deliveries", "subscriptions", "webhook_events", "reconcile_state"):
        assert await world.rows(f"SELECT * FROM {table}") == [], table  # noqa: S608
    assert world.calls() == []
    runs = await world.rows("SELECT dry_run, drift, queued FROM reconcile_runs")
    assert runs == [{"dry_run": 1, "drift": len(report.drift), "queued": 0}]


async def test_two_processes_never_reconcile_at_once(world: PageWorld) -> None:
    deps = world.app[reconcile_key]
    other = open_store(world.app[settings_key].store)
    await other.open()
    try:
        world.sim.subscribe(STANDARD_CODE, **org(3))
        world.sim.set_delay(0.2)  # billing is slow: the first run holds the lock meanwhile
        second = replace(deps, store=other, owner="second-process")
        reports = await asyncio.gather(run_reconciliation(deps), run_reconciliation(second))
        world.sim.set_delay(0)
        taken = await other.write(lambda db: rows.take_lock(db, "third", now=1e12, lease=1))
    finally:
        await other.close()

    assert sorted(r.outcome for r in reports) == sorted([RunOutcome.DONE, RunOutcome.BUSY])
    assert taken, "the lock is released after the run"


async def test_rate_limited_run_is_recorded_and_answers_no_500(make_world: WorldFactory) -> None:
    world = await make_world(billing={"max_retry_after_seconds": 0.001})
    world.sim.limit_requests(1)
    world.sim.subscribe(STANDARD_CODE, **org(4))

    report = await reconcile(world)

    assert report.outcome is RunOutcome.RATE_LIMITED
    runs = await world.rows("SELECT outcome FROM reconcile_runs")
    assert runs == [{"outcome": "rate_limited"}]


async def test_schedule_runs_at_the_interval_with_an_injected_sleep(world: PageWorld) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 2:
            raise asyncio.CancelledError

    try:
        await run_on_schedule(world.app[reconcile_key], interval=900, sleep=sleep)
    except asyncio.CancelledError:
        pass
    found = await world.rows("SELECT trigger, outcome FROM reconcile_runs")
    assert waits == [900, 900, 900]
    assert found == [{"trigger": "schedule", "outcome": "done"}] * 2


async def test_readyz_and_check_config_say_whether_reconciliation_runs(
    world: PageWorld, make_broker: Any
) -> None:
    with_billing = await (await world.browser()).client.get("/readyz")
    without = await (await make_broker()).get("/readyz")

    assert (await with_billing.json())["reconcile"] == "every 900 s"
    assert (await without.json())["reconcile"] == "off: no [billing] section"


async def test_parked_subscription_is_released_when_billing_customer_names_the_org(
    world: PageWorld,
) -> None:
    sub = world.sim.subscribe(STANDARD_CODE, quantity=2)  # the customer has no zuid or zgid
    await world.settle()
    parked = await world.rows("SELECT state FROM subscriptions")
    assert parked == [{"state": "parked"}]
    # The vendor fills in the customer's fields in billing; editing a customer emits no event.
    customer = world.sim.customers[sub.customer.customer_id]
    for number, (label, value) in enumerate((("zuid", "61000000009"), ("zgid", "71000000009"))):
        customer.custom_fields.append(
            CustomField(f"90000000000000{number}", label, f"cf_{label}", value)
        )

    report = await reconcile(world)
    await settled(world)

    assert [(d.kind, d.action) for d in report.drift] == [(DriftKind.PARKED_RESOLVED, "queued")]
    assert [(c.method, c.zgid) for c in world.calls()] == [("POST", "71000000009")]


async def test_a_subscription_row_that_does_not_read_is_passed_over_and_said(
    world: PageWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One bad row in billing's subscriptions list costs only itself: the run completes and
    every good subscription is delivered; each bad row is named in a warning."""
    world.sim.drop_all_webhooks()
    subs = [world.sim.subscribe(STANDARD_CODE, quantity=2 + n, **org(n)) for n in range(2)]
    unreadable = {"subscription_id": "2077000000399999", "status": "", "plan_code": STANDARD_CODE}
    listed = listing.subscriptions

    def with_bad_rows(
        request: web.Request, subs: Iterable[Subscription], today: date
    ) -> list[object]:
        rows = listed(request, subs, today)
        return [rows[0], "not a subscription", unreadable, *rows[1:]]

    monkeypatch.setattr(listing, "subscriptions", with_bad_rows)
    with capture_logs() as logs:
        report = await reconcile(world)
    await settled(world)

    assert report.outcome is RunOutcome.DONE
    assert report.counts.subscriptions_read == 3  # the two good rows and the unreadable one
    assert adds_by_subscription(world) == {s.subscription_id: 1 for s in subs}
    skipped = [
        (entry["list"], entry["row"], entry["id"], entry["problems"][0])
        for entry in logs
        if entry["event"] == "billing.list_row_skipped"
    ]
    assert skipped == [
        ("subscriptions", 1, None, "subscriptions[1]: not an object"),
        (
            "subscriptions",
            2,
            "2077000000399999",
            "subscriptions[2].status: Value error, must be a status word of 1 to 50 characters",
        ),
    ]


# --- reading the events list as Zoho documents it ----------------------------------------------


def event_list_reads(world: PageWorld) -> int:
    return sum(1 for call in world.sim.api_calls if call.path == "/billing/v1/events")


async def recorded_events(world: PageWorld) -> dict[str, str | None]:
    found = await world.rows("SELECT event_id, subscription_id FROM webhook_events")
    return {row["event_id"]: row["subscription_id"] for row in found}


async def test_a_listed_event_is_recorded_only_with_the_payload_read_from_its_own_page(
    world: PageWorld,
) -> None:
    """List items carry only id, type and time (specs/events.yml); the payload is on
    ``GET /events/{id}``, and the event is recorded with it, its subscription included."""
    world.sim.drop_all_webhooks()
    sub = world.sim.subscribe(STANDARD_CODE, quantity=3, **org(1))
    [created] = [e for e in world.sim.events if e.event_type == "subscription_created"]

    report = await reconcile(world)
    await settled(world)

    assert report.outcome is RunOutcome.DONE
    read = [c.path for c in world.sim.api_calls if c.path.startswith("/billing/v1/events/")]
    assert read == [f"/billing/v1/events/{created.event_id}"]  # payment events are not read
    assert (await recorded_events(world)) == {created.event_id: sub.subscription_id}
    [row] = await world.rows("SELECT raw_body FROM webhook_events")
    assert bytes(row["raw_body"]) == created.body
    assert [c.body["no_of_users"] for c in world.calls("POST")] == ["3"]


@pytest.mark.parametrize("order", list(EventOrder))
async def test_backfill_is_complete_whatever_order_billing_lists_events_in(
    make_world: WorldFactory, order: EventOrder
) -> None:
    """No filter is documented, so none is sent: the list is read page by page (no
    ``page_context``: a full page means more) until the run has passed its cursor."""
    world = await make_world(billing_simulator={"events_order": order}, reconcile={"per_page": 2})
    world.sim.drop_all_webhooks()
    early = [world.sim.subscribe(STANDARD_CODE, quantity=2 + n, **org(n)) for n in range(3)]
    first = await reconcile(world)
    await settled(world)
    world.sim.set_today(TODAY + timedelta(days=3))
    late = [world.sim.subscribe(STANDARD_CODE, quantity=5 + n, **org(n + 3)) for n in range(3)]
    second = await reconcile(world)
    await settled(world)
    before_third = event_list_reads(world)
    third = await reconcile(world)

    assert (first.outcome, second.outcome, third.outcome) == (RunOutcome.DONE,) * 3
    assert (first.stopped_early, second.stopped_early, third.stopped_early) == (None,) * 3
    subs = early + late
    recorded = await recorded_events(world)
    created = [e for e in world.sim.events if e.event_type == "subscription_created"]
    assert recorded == {e.event_id: s.subscription_id for e, s in zip(created, subs, strict=True)}
    assert adds_by_subscription(world) == {s.subscription_id: 1 for s in subs}
    assert [c.body["no_of_users"] for c in world.calls("POST")] == ["2", "3", "4", "5", "6", "7"]
    assert third.drift == []
    # 12 events, 2 a page: the third run's cursor is the later day. Newest first, the list is
    # passed at page 4 (the first page holding an older event); oldest first it is read to
    # its short last page (page 7, empty).
    pages = {EventOrder.NEWEST_FIRST: 4, EventOrder.OLDEST_FIRST: 7}[order]
    assert event_list_reads(world) - before_third == pages


async def test_an_event_filter_billing_ignores_is_turned_off_for_the_run(
    make_world: WorldFactory,
) -> None:
    world = await make_world(
        reconcile={"per_page": 2, "events_since_param": "date_start",
                   "events_order_param": "sort_order"},
    )  # fmt: skip
    world.sim.drop_all_webhooks()
    early = world.sim.subscribe(STANDARD_CODE, quantity=2, **org(1))
    await reconcile(world)
    world.sim.set_today(TODAY + timedelta(days=3))
    late = world.sim.subscribe(STANDARD_CODE, quantity=3, **org(2))

    with capture_logs() as logs:
        report = await reconcile(world)
    await settled(world)

    [ignored] = [e for e in logs if e["event"] == "reconcile.events_filter_ignored"]
    assert ignored["params"] == ["date_start", "sort_order"]
    assert report.outcome is RunOutcome.DONE
    assert adds_by_subscription(world) == {early.subscription_id: 1, late.subscription_id: 1}


async def test_an_event_filter_billing_honours_saves_pages(make_world: WorldFactory) -> None:
    world = await make_world(
        billing_simulator={"event_filters": True},
        reconcile={"per_page": 2, "events_since_param": "date_start",
                   "events_order_param": "sort_order"},
    )  # fmt: skip
    world.sim.drop_all_webhooks()
    for day in (0, 3):
        world.sim.set_today(TODAY + timedelta(days=day))
        world.sim.subscribe(STANDARD_CODE, quantity=2 + day, **org(day))
        await reconcile(world)
    world.sim.set_today(TODAY + timedelta(days=6))
    late = world.sim.subscribe(STANDARD_CODE, quantity=9, **org(6))
    before = event_list_reads(world)

    with capture_logs() as logs:
        report = await reconcile(world)
    await settled(world)

    assert [e for e in logs if e["event"] == "reconcile.events_filter_ignored"] == []
    assert [d.subscription_id for d in report.drift] == [late.subscription_id]
    assert report.since is not None
    later = [e for e in world.sim.events if e.payload["event_time"] >= report.since]
    assert len(later) < len(world.sim.events)
    # only the events from the cursor's day on, 2 a page, up to a short page
    assert event_list_reads(world) - before == len(later) // 2 + 1


async def test_a_run_cut_short_by_its_page_bound_says_so_and_keeps_its_cursor(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconcile={"per_page": 2, "max_pages": 2})
    world.sim.drop_all_webhooks()
    for n in range(5):  # 10 events and 5 subscriptions: more than 2 pages of 2 each
        world.sim.subscribe(STANDARD_CODE, quantity=2 + n, **org(n))

    with capture_logs() as logs:
        report = await reconcile(world)

    assert report.outcome is RunOutcome.DONE
    assert report.stopped_early is not None
    assert "the events list did not end within 2 pages" in report.stopped_early
    assert "the subscriptions list did not end within 2 pages" in report.stopped_early
    assert any(e["event"] == "billing.list_cut_short" for e in logs)
    assert await world.app[store_key].read(rows.cursor) is None


async def test_a_backfill_over_its_event_read_budget_feeds_the_oldest_and_the_next_run_the_rest(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconcile={"max_event_reads": 2})
    world.sim.drop_all_webhooks()
    subs = [world.sim.subscribe(STANDARD_CODE, quantity=2 + n, **org(n)) for n in range(3)]

    first = await reconcile(world)
    second = await reconcile(world)
    await settled(world)

    assert first.stopped_early is not None
    assert "reconcile.max_event_reads" in first.stopped_early

    def missed(report: RunReport) -> list[str]:
        return [d.subscription_id for d in report.drift if d.kind is DriftKind.MISSED_EVENT]

    # (the state sweep of the first run finds the third subscription too, as unknown)
    assert missed(first) == [s.subscription_id for s in subs[:2]]
    assert missed(second) == [subs[2].subscription_id]
    assert second.stopped_early is None
    assert adds_by_subscription(world) == {s.subscription_id: 1 for s in subs}
