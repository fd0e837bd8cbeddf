"""Retention (docs/operations.md: Retention): what is pruned after how long, on SQLite and on
PostgreSQL (``store_url`` runs each test on both). The expected ages come from the documented
defaults: bodies, attempts and finished deliveries 90 days, audit 400 days."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from time import time as wall_clock
from typing import Any

import pytest

from broker.config import RetentionSettings, Settings, StoreSettings
from broker.core.decide import Outcome
from broker.delivery.retention import Pruner, prune_on_schedule
from broker.store.audit import record_action
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Tx
from broker.store.opening import open_store
from broker.store.ops_actions import Operator
from broker.store.replay import replay_event
from broker.store.retention import PruneTarget
from broker.store.retention_lease import LeaseLost, take_lease, while_held
from broker.web.appkeys import store_key
from tests.conftest import BrokerFactory, fast_settings, post_event
from tests.support.basics import (
    DECEMBER_FIRST_NOON,
    ManualTime,
    body_of,
    eventually,
    subscription_event,
)
from tests.support.ops import OPS, sign_in
from tests.support.retention import DAY, NOW, ingest, refund_event


async def event_rows(store: StoreBackend) -> dict[str, tuple[bytes, float | None]]:
    rows = await store.read(
        lambda db: db.select_all("SELECT event_id, raw_body, body_pruned_at FROM webhook_events")
    )
    return {r["event_id"]: (bytes(r["raw_body"]), r["body_pruned_at"]) for r in rows}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path, "http://127.0.0.1:1")


@pytest.fixture
async def store(store_url: str) -> Any:
    opened = open_store(StoreSettings(url=store_url))
    await opened.open()
    yield opened
    await opened.close()


async def test_bodies_past_90_days_are_emptied_and_marked_while_every_event_id_stays(
    store: StoreBackend, settings: Settings
) -> None:
    old = [
        subscription_event(event_id=f"81000000{i}", subscription_id=f"10000000000000010{i}")
        for i in range(3)
    ]
    recent = subscription_event(event_id="810000009", subscription_id="100000000000000109")
    for event in old:
        await ingest(store, settings, event, at=NOW - 91 * DAY)
    await ingest(store, settings, recent, at=NOW - 89 * DAY)
    pruner = Pruner(store, RetentionSettings(batch_rows=2), clock=lambda: NOW)

    dry = await pruner.run(dry_run=True)
    assert dry.counts[PruneTarget.WEBHOOK_BODIES] == 3
    assert all(pruned is None for _, pruned in (await event_rows(store)).values())

    report = await pruner.run()  # batches of 2: the run goes on until a batch comes back short
    assert report.counts[PruneTarget.WEBHOOK_BODIES] == 3
    rows = await event_rows(store)
    assert sorted(rows) == sorted([*(e["event_id"] for e in old), recent["event_id"]])
    for event in old:
        assert rows[event["event_id"]] == (b"", NOW)
    assert rows[recent["event_id"]] == (body_of(recent), None)
    assert (await pruner.run()).counts[PruneTarget.WEBHOOK_BODIES] == 0


async def test_a_resent_pruned_event_is_still_a_duplicate_and_its_replay_says_the_body_is_gone(
    store: StoreBackend, settings: Settings
) -> None:
    event = subscription_event(event_id="810000101")
    await ingest(store, settings, event, at=NOW - 100 * DAY)
    await Pruner(store, RetentionSettings(), clock=lambda: NOW).run()

    again = await ingest(store, settings, event, at=NOW)
    assert again.outcome is Outcome.DUPLICATE
    replayed = await store.write(
        partial(
            replay_event, who=Operator("test"), event_id="810000101", settings=settings, now=NOW
        )
    )
    assert replayed.outcome is Outcome.REFUSED
    assert replayed.reason is not None
    assert "body was pruned" in replayed.reason
    assert "reconciliation" in replayed.reason


async def test_the_console_says_a_pruned_body_was_pruned_instead_of_showing_it_empty(
    make_broker: BrokerFactory,
) -> None:
    client = await make_broker(ops=OPS)
    response = await post_event(client, subscription_event(event_id="810000102"))
    assert response.status == 200, await response.text()
    await sign_in(client)
    page = await (await client.get("/ops/events/810000102")).text()
    assert "was pruned" not in page
    later = wall_clock() + 100 * DAY
    await Pruner(client.app[store_key], RetentionSettings(), clock=lambda: later).run()

    page = await (await client.get("/ops/events/810000102")).text()
    assert "The body was pruned on" in page
    assert "retention.webhook_body_days" in page
    assert '<pre class="raw">' not in page


async def test_a_money_events_pruned_body_keeps_its_money_record(
    store: StoreBackend, settings: Settings
) -> None:
    """money_events references the event row: pruning must keep that row (SQLite rewrites it)."""
    await ingest(
        store, settings, refund_event("810000201", "900000000000000001"), at=NOW - 91 * DAY
    )
    report = await Pruner(store, RetentionSettings(), clock=lambda: NOW).run()
    assert report.counts[PruneTarget.WEBHOOK_BODIES] == 1
    money = await store.read(lambda db: db.select_all("SELECT event_id FROM money_events"))
    assert money == [{"event_id": "810000201"}]


def finish_every_delivery(db: Tx, *, at: float) -> None:
    """What the worker would have recorded: each delivery done, with one attempt at ``at``."""
    for row in db.select_all("SELECT id FROM deliveries WHERE finished_at IS NULL"):
        db.execute(
            "UPDATE deliveries SET state = 'done', finished_at = ? WHERE id = ?", [at, row["id"]]
        )
        db.execute(
            "INSERT INTO attempts (delivery_id, started_at, latency_ms, method, url,"
            " request_body, status, outcome) VALUES (?, ?, 5, 'POST', 'u', '{}', 200, 'success')",
            [row["id"], at],
        )


async def test_old_deliveries_attempts_and_audit_go_but_each_subscriptions_newest_delivery_stays(
    store: StoreBackend, settings: Settings
) -> None:
    sid = "100000000000000301"
    await ingest(
        store,
        settings,
        subscription_event(event_id="8301", subscription_id=sid),
        at=NOW - 100 * DAY,
    )
    await store.write(partial(finish_every_delivery, at=NOW - 91 * DAY))
    changed = subscription_event(event_id="8302", subscription_id=sid, quantity=9)
    await ingest(store, settings, changed, at=NOW - 100 * DAY)
    await store.write(partial(finish_every_delivery, at=NOW - 91 * DAY))
    other = subscription_event(
        event_id="8303",
        subscription_id="100000000000000302",
        customer_id="900000000000000002",
        zgid="70000000002",
        zuid="60000000002",
    )
    await ingest(store, settings, other, at=NOW - 100 * DAY)
    await store.write(partial(finish_every_delivery, at=NOW - 89 * DAY))
    for days in (401, 399):
        await store.write(
            partial(
                record_action,
                at=NOW - days * DAY,
                zuid="60000000001",
                zgid="70000000001",
                action=f"page.after_{days}_days",
                result="done",
            )
        )

    report = await Pruner(store, RetentionSettings(), clock=lambda: NOW).run()

    # The first delivery (and its attempt) goes; the second is the subscription's newest.
    assert report.counts[PruneTarget.DELIVERIES] == 1
    # The newest delivery's 91-day-old attempt goes; the 89-day-old one stays.
    assert report.counts[PruneTarget.ATTEMPTS] == 1
    assert report.counts[PruneTarget.AUDIT] == 1

    def left(db: Tx) -> dict[str, Any]:
        return {
            "deliveries": [
                (r["subscription_id"], r["state"])
                for r in db.select_all("SELECT subscription_id, state FROM deliveries ORDER BY id")
            ],
            "attempts": [r["started_at"] for r in db.select_all("SELECT started_at FROM attempts")],
            "audit": [r["action"] for r in db.select_all("SELECT action FROM audit_log")],
        }

    assert await store.read(left) == {
        "deliveries": [(sid, "done"), ("100000000000000302", "done")],
        "attempts": [NOW - 89 * DAY],
        "audit": ["page.after_399_days"],
    }


async def test_only_one_process_prunes_at_a_time(store: StoreBackend, settings: Settings) -> None:
    await ingest(store, settings, subscription_event(event_id="8401"), at=NOW - 91 * DAY)
    await store.write(partial(take_lease, owner="other-replica", now=NOW, seconds=600))

    busy = await Pruner(store, RetentionSettings(), clock=lambda: NOW).run()
    assert busy.busy
    assert busy.counts == {}
    # A pruner whose lease was taken deletes nothing, even mid-run.
    with pytest.raises(LeaseLost):
        await store.write(
            partial(while_held, work=lambda db: None, owner="me", now=NOW, seconds=600)
        )
    assert (await event_rows(store))["8401"][1] is None

    # The other replica died: once its lease runs out, the next run prunes.
    later = await Pruner(store, RetentionSettings(), clock=lambda: NOW + 601).run()
    assert later.counts[PruneTarget.WEBHOOK_BODIES] == 1


async def test_serve_prunes_on_its_schedule(store: StoreBackend, settings: Settings) -> None:
    await ingest(store, settings, subscription_event(event_id="8501"), at=NOW - 91 * DAY)
    time = ManualTime(NOW)
    task = asyncio.create_task(
        prune_on_schedule(
            Pruner(store, RetentionSettings(), clock=time.clock), interval=3600, sleep=time.sleep
        )
    )
    try:
        await eventually(lambda: time.naps == [NOW + 3600], message="the first nap")
        assert (await event_rows(store))["8501"][1] is None  # nothing before the first interval
        time.advance_to(NOW + 3600)

        async def pruned() -> bool:
            return (await event_rows(store))["8501"][1] is not None

        await eventually(pruned, message="the scheduled run")
        assert (await event_rows(store))["8501"] == (b"", NOW + 3600)
    finally:
        task.cancel()


def padded_event(number: int, size: int = 1400) -> dict[str, Any]:
    """A webhook of ``size`` bytes that changes no subscription (an invoice's), so what the
    file holds is the events themselves."""
    event = subscription_event("invoice_created", event_id=str(8_600_000 + number))
    event["data"]["subscription"]["notes"] = ""
    event["data"]["subscription"]["notes"] = "x" * (size - len(body_of(event)))
    return event


async def test_sqlite_reuses_the_pages_pruning_frees_so_the_file_stops_growing(
    tmp_path: Path, settings: Settings
) -> None:
    """Writing as much again after a prune grows the file by under a quarter of what the first
    writes did: the pruned bodies' pages are on the freelist and taken first."""
    store = open_store(StoreSettings(path=tmp_path / "reuse.db"))
    await store.open()

    async def pages() -> int:
        row = await store.read(lambda db: db.select_one("PRAGMA page_count"))
        assert row is not None
        return int(row["page_count"])

    async def write(first: int) -> None:
        events = [padded_event(n) for n in range(first, first + 1500)]
        assert {len(body_of(e)) for e in events} == {1400}
        await asyncio.gather(*(ingest(store, settings, e, at=NOW - 91 * DAY) for e in events))

    try:
        empty = await pages()
        await write(0)
        full = await pages()
        report = await Pruner(store, RetentionSettings(), clock=lambda: NOW).run()
        assert report.counts[PruneTarget.WEBHOOK_BODIES] == 1500
        freed = await store.read(lambda db: db.select_one("PRAGMA freelist_count"))
        assert freed is not None
        assert freed["freelist_count"] > (full - empty) / 2
        await write(1500)
        assert await pages() - full < (full - empty) / 4
    finally:
        await store.close()


def test_broker_prune_dry_run_counts_and_prune_prunes(
    store_url: str, settings: Settings, tmp_path: Path
) -> None:
    """Run as an operator does, in its own process: the command sets up its own logging."""

    async def two_events() -> None:
        store = open_store(StoreSettings(url=store_url))
        await store.open()
        try:
            await ingest(store, settings, padded_event(1), at=wall_clock() - 91 * DAY)
            await ingest(store, settings, padded_event(2), at=wall_clock() - 89 * DAY)
        finally:
            await store.close()

    asyncio.run(two_events())
    env = {
        **{k: v for k, v in os.environ.items() if not k.upper().startswith("BROKER_")},
        "BROKER_PLATFORM__APP_DOMAIN": "example",
        "BROKER_PLATFORM__ZAPIKEY": "a-zapikey-for-the-test",
        "BROKER_STORE__URL": store_url,
    }

    def prune(*args: str) -> tuple[int, list[str]]:
        done = subprocess.run(
            [sys.executable, "-m", "broker", "prune", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.stderr == ""
        return done.returncode, done.stdout.splitlines()

    assert prune("--dry-run") == (
        0,
        [
            "would prune 1 webhook_bodies",
            "would prune 0 deliveries",
            "would prune 0 attempts",
            "would prune 0 audit_log",
        ],
    )
    code, out = prune()
    assert (code, out[0]) == (0, "pruned 1 webhook_bodies")
    assert prune("--dry-run")[1][0] == "would prune 0 webhook_bodies"


async def test_serve_runs_the_pruner_every_interval_seconds(make_broker: BrokerFactory) -> None:
    time = ManualTime(DECEMBER_FIRST_NOON)
    interval = 100 * DAY
    broker = await make_broker(
        clock=time.clock, sleep=time.sleep, retention={"interval_seconds": interval}
    )
    event = subscription_event(event_id="8801")
    assert (await post_event(broker, event)).status == 200
    store = broker.app[store_key]
    await eventually(lambda: DECEMBER_FIRST_NOON + interval in time.naps, message="the pruner")
    assert (await event_rows(store))["8801"] == (body_of(event), None)

    time.advance_to(DECEMBER_FIRST_NOON + interval)

    async def pruned() -> bool:
        return (await event_rows(store))["8801"][1] is not None

    await eventually(pruned, message="the scheduled prune")
    assert (await event_rows(store))["8801"] == (b"", DECEMBER_FIRST_NOON + interval)
