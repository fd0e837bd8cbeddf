"""Reconciliation's lock is held for the whole run, however long: the run renews its lease as it
goes, and a run whose lease was taken by another process stops at once, queuing nothing more.

Billing's simulator holds each read until the test lets it through, and the broker's clock is
moved on in one step, so a run "longer than the lease" takes no real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial

import pytest
from structlog.testing import capture_logs

from broker.core.reconcile import DriftKind
from broker.delivery.reconcile import RunOutcome, run_reconciliation
from broker.store import reconcile as rows
from broker.store.engine.sqlite import SqliteStore
from broker.store.opening import sqlite_store
from broker.web.appkeys import metrics_key, reconcile_key
from tests.support.basics import APP_DOMAIN, eventually
from tests.support.pages import STANDARD_CODE, PageWorld

PROFESSIONAL_CODE = f"{APP_DOMAIN}_1002"


@pytest.fixture
async def other_process(world: PageWorld) -> AsyncIterator[SqliteStore]:
    """A second process's store on the same database file."""
    store = sqlite_store(world.app[reconcile_key].store.path)
    await store.open()
    yield store
    await store.close()


async def held_at(world: PageWorld, path: str) -> None:
    """Wait until the run's latest billing read is ``path`` and it is held unanswered."""

    def waiting() -> bool:
        calls = world.sim.api_calls
        return bool(calls) and calls[-1].path.endswith(path) and world.sim.held_requests == 1

    await eventually(waiting, message=f"the run waits on billing's {path}")


def let_one_through(world: PageWorld) -> None:
    """Answer the read held now; hold the next one (a woken waiter stays woken)."""
    world.sim.release()
    world.sim.hold()


def org(n: int) -> dict[str, str]:
    return {"zuid": f"610000{n:05d}", "zgid": f"710000{n:05d}"}


async def test_a_run_longer_than_its_lease_keeps_the_lock(
    world: PageWorld, other_process: SqliteStore
) -> None:
    deps = world.app[reconcile_key]
    lease = deps.settings.reconcile.lease_seconds
    world.sim.subscribe(STANDARD_CODE, **org(1))
    await world.settle()  # its webhook arrived: the run finds nothing to write, it only reads
    world.sim.hold()

    run = asyncio.create_task(run_reconciliation(deps))
    await held_at(world, "/events")
    world.clock.advance(lease * 2 / 3)
    let_one_through(world)
    await held_at(world, "/subscriptions")
    world.clock.advance(lease * 2 / 3)  # the lease taken at the start ran out a third ago
    second = await run_reconciliation(replace(deps, store=other_process, owner="second-process"))
    world.sim.release()
    first = await run
    third = await run_reconciliation(replace(deps, store=other_process, owner="third-process"))

    assert second.outcome is RunOutcome.BUSY
    assert (first.outcome, first.drift) == (RunOutcome.DONE, [])
    assert third.outcome is RunOutcome.DONE, "the lock is released at the end"
    runs = await world.rows("SELECT outcome FROM reconcile_runs ORDER BY id")
    assert runs == [{"outcome": "done"}, {"outcome": "done"}]


async def test_a_run_whose_lease_was_taken_stops_as_lost_lock_and_queues_nothing_more(
    world: PageWorld, other_process: SqliteStore
) -> None:
    deps = world.app[reconcile_key]
    lease = deps.settings.reconcile.lease_seconds
    kept = world.sim.subscribe(STANDARD_CODE, quantity=3, **org(1))
    await world.settle()
    backdated = await world.checkout.post(
        f"/_sim/subscriptions/{kept.subscription_id}/backdate",
        json={"date": "2026-06-01", "plan_code": PROFESSIONAL_CODE},
    )
    assert backdated.status == 200  # no event: only the sweep would find it
    world.sim.drop_all_webhooks()
    missed = world.sim.subscribe(STANDARD_CODE, quantity=2, **org(2))
    [created] = [e for e in world.sim.events if e.event_type == "subscription_created"][-1:]
    world.sim.hold()

    run = asyncio.create_task(run_reconciliation(deps))
    await held_at(world, "/events")
    let_one_through(world)  # the list: each event's id, type and time
    await held_at(world, f"/events/{created.event_id}")
    let_one_through(world)  # the missed event read in full: the backfill queues it
    await held_at(world, "/subscriptions")
    world.clock.advance(lease + 1)  # this process stalled; the lease ran out and was taken
    taken = await other_process.write(
        partial(rows.take_lock, owner="second-process", now=world.clock(), lease=lease)
    )
    world.sim.release()
    with capture_logs() as logs:
        report = await run

    assert taken
    assert report.outcome is RunOutcome.LOST_LOCK
    assert [(d.subscription_id, d.kind) for d in report.drift] == [
        (missed.subscription_id, DriftKind.MISSED_EVENT)
    ]
    queued = await world.rows("SELECT subscription_id AS sid FROM deliveries ORDER BY id")
    assert queued == [
        {"sid": kept.subscription_id},  # its webhook, before the run
        {"sid": missed.subscription_id},  # the backfill, while the run held the lock
    ], "the backdated plan change was not queued after the lock was lost"
    stored = await world.rows(
        "SELECT plan_code FROM subscriptions WHERE subscription_id = ?", [kept.subscription_id]
    )
    assert stored == [{"plan_code": STANDARD_CODE}]
    runs = await world.rows("SELECT outcome, drift, queued FROM reconcile_runs")
    assert runs == [{"outcome": "lost_lock", "drift": 1, "queued": 1}]
    assert await world.rows("SELECT * FROM reconcile_state") == [], "the cursor did not move"
    holder = await world.rows("SELECT owner FROM reconcile_lock")
    assert holder == [{"owner": "second-process"}], "the new holder keeps the lock"
    lost = [e for e in logs if e["event"] == "reconcile.lost_lock"]
    assert [(e["log_level"], e["run_id"]) for e in lost] == [("warning", report.run_id)]
    counted = world.app[metrics_key].registry.get_sample_value(
        "broker_reconcile_runs_total", {"outcome": "lost_lock"}
    )
    assert counted == 1.0
