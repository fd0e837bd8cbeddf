"""Restores are safe: a broker started on a restored backup sends nothing stale.

A backup taken while a delivery is pending holds that delivery; by the time the backup is
restored, billing and the platform have moved on. The real broker, the billing simulator and the
Developer Console simulator; the backup is made by ``broker backup`` itself, and the platform's
received calls are counted."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from broker.app import create_app
from broker.cli import main
from broker.config import Settings
from broker.simulators.billing.inputs import PlanInput, SubscriptionChangeInput
from broker.simulators.platform import PlatformSimulator
from broker.store import generation
from broker.web.appkeys import settings_key, store_key
from tests.conftest import BrokerFactory
from tests.support.basics import eventually
from tests.support.ops import OPS, sign_in
from tests.support.pages import STANDARD_CODE, PageWorld
from tests.support.postgres import fresh_database, server_bindir, store_section

ORG = {"zuid": "61000000001", "zgid": "71000000001"}


@pytest.fixture
def broker_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """SQLite beside the test; a test marked ``postgresql`` gets a database of its own."""
    if request.node.get_closest_marker("postgresql"):
        return store_section(request.getfixturevalue("postgres_url"))
    return {"path": tmp_path / "broker.db"}


async def moved_on(world: PageWorld, simulator: PlatformSimulator, subscription_id: str) -> int:
    """After the backup: the platform comes back and gets the Add, then billing moves the
    subscription to 4 users and the platform gets that too. The platform's calls so far."""
    simulator.come_up()
    await world.settle()
    world.sim.state.change(
        subscription_id,
        SubscriptionChangeInput(plan=PlanInput(plan_code=STANDARD_CODE, quantity=4)),
    )
    await world.settle()
    assert simulator.subscriptions[ORG["zgid"]].no_of_users == "4"
    return len(simulator.calls)


async def nothing_stale_was_sent(
    world: PageWorld, simulator: PlatformSimulator, before_restore: int
) -> None:
    after = simulator.calls[before_restore:]
    stale = [c for c in after if c.body is not None and c.body.get("no_of_users") == "2"]
    assert stale == []
    # Billing's state is re-asserted: the restored store thinks the platform has nothing (its
    # Add was pending), so it sends the Add at billing's 4 users, and the platform keeps 4.
    assert [(c.method, (c.body or {}).get("no_of_users")) for c in after] == [("POST", "4")]
    assert simulator.subscriptions[ORG["zgid"]].no_of_users == "4"
    superseded = await world.rows(
        "SELECT id, last_error FROM deliveries WHERE state = 'superseded' AND last_error LIKE ?",
        ["superseded: the store was restored from a backup of generation 1%"],
    )
    assert len(superseded) == 1
    [audit] = await world.audit("store.restore_superseded")
    assert json.loads(audit["detail"])["superseded_deliveries"] == [superseded[0]["id"]]
    assert len(await world.audit("store.restore_reconciled")) == 1
    assert (await restore_marker(world)).number == 2


async def restore_marker(world: PageWorld) -> generation.Generation:
    return await world.app[store_key].read(generation.current)


async def pending_delivery_with_platform_down(
    world: PageWorld, simulator: PlatformSimulator
) -> str:
    """A subscription bought for 2 users while the platform is down: its Add stays pending."""
    simulator.go_down()
    subscription = world.sim.subscribe(STANDARD_CODE, quantity=2, **ORG)

    async def tried() -> bool:
        rows = await world.rows("SELECT state, attempts FROM deliveries")
        return len(rows) == 1 and rows[0]["attempts"] >= 1 and rows[0]["state"] == "pending"

    await eventually(tried, message="the Add was tried and is waiting to be retried")
    return subscription.subscription_id


def take_backup(settings: Settings, destination: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "--db", str(settings.store.path), str(destination)]) == 0
    assert "marked as a backup of generation 1" in capsys.readouterr().out


async def restart_on(
    world: PageWorld,
    settings: Settings,
    backup: Path,
    aiohttp_client: Any,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Stop the broker, put the backup in place of its database (stale -wal/-shm removed, as
    deploy/README.md says), and start a new broker on it."""
    await world.broker.close()
    database = Path(settings.store.path)
    for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    app = create_app(settings, clock=world.clock, sleep=sleep)
    restarted = await aiohttp_client(TestServer(app))
    world.broker = restarted.server


async def restore_finished(world: PageWorld) -> None:
    async def finished() -> bool:
        marker = await restore_marker(world)
        rows = await world.rows("SELECT state FROM deliveries")
        idle = all(row["state"] in ("done", "dead", "superseded") for row in rows)
        return not marker.restore_pending and idle

    await eventually(finished, message="the restore was reconciled and every delivery finished")


async def test_restored_backup_sends_nothing_stale_after_the_platform_moved_on(
    world: PageWorld,
    simulator: PlatformSimulator,
    tmp_path: Path,
    aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = world.app[settings_key]
    subscription_id = await pending_delivery_with_platform_down(world, simulator)
    backup = tmp_path / "backup.db"
    take_backup(settings, backup, capsys)
    before_restore = await moved_on(world, simulator, subscription_id)

    await restart_on(world, settings, backup, aiohttp_client)
    await restore_finished(world)

    await nothing_stale_was_sent(world, simulator, before_restore)


@pytest.mark.postgresql
async def test_a_pg_restore_marked_restored_sends_nothing_stale(
    world: PageWorld,
    simulator: PlatformSimulator,
    tmp_path: Path,
    aiohttp_client: Any,
    postgres_server: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The documented PostgreSQL procedure: pg_dump, pg_restore into an empty database,
    ``broker mark-restored``, start."""
    settings = world.app[settings_key]
    assert settings.store.url is not None
    source = settings.store.url.get_secret_value()
    bindir = server_bindir()
    tools = {name: str(bindir / name) if bindir else name for name in ("pg_dump", "pg_restore")}
    subscription_id = await pending_delivery_with_platform_down(world, simulator)
    dump = tmp_path / "broker.dump"
    pg_tool(tools["pg_dump"], "-Fc", "-d", source, "-f", str(dump))
    before_restore = await moved_on(world, simulator, subscription_id)
    await world.broker.close()

    with fresh_database(postgres_server) as restored_url:
        pg_tool(tools["pg_restore"], "--no-owner", "-d", restored_url, str(dump))
        assert main(["mark-restored", "--db", restored_url]) == 0
        assert "stage restored" in capsys.readouterr().out
        restored = settings.model_copy(
            update={"store": settings.store.model_copy(update={"url": SecretStr(restored_url)})}
        )
        client = await aiohttp_client(TestServer(create_app(restored, clock=world.clock)))
        world.broker = client.server
        await restore_finished(world)

        await nothing_stale_was_sent(world, simulator, before_restore)
        await client.close()


def pg_tool(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_restore_with_billing_unchanged_still_delivers_what_was_pending(
    world: PageWorld,
    simulator: PlatformSimulator,
    tmp_path: Path,
    aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The backup's pending Add never reached the platform and billing has not changed: the
    restore re-asserts billing's state, so the org still gets its Add, once."""
    settings = world.app[settings_key]
    await pending_delivery_with_platform_down(world, simulator)
    backup = tmp_path / "backup.db"
    take_backup(settings, backup, capsys)

    await restart_on(world, settings, backup, aiohttp_client)
    simulator.come_up()
    await restore_finished(world)

    assert [(c.method, (c.body or {}).get("no_of_users")) for c in simulator.applied] == [
        ("POST", "2")
    ]


class RetryGate:
    """The app's sleep: the restore's retry wait (``seconds``) is held until ``release``, and
    ``waiting`` is set when it begins; every other wait passes through."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.waiting = asyncio.Event()
        self._released = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        if seconds != self.seconds:
            await asyncio.sleep(seconds)  # the app's own naps (worker polls) keep their length
            return
        self.waiting.set()
        await self._released.wait()

    def release(self) -> None:
        self._released.set()


async def test_nothing_is_sent_until_billing_was_read_again(
    world: PageWorld,
    simulator: PlatformSimulator,
    tmp_path: Path,
    aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Billing is down when the restored broker starts: the stale outbox is superseded at once,
    and nothing at all goes to the platform until a reconciliation succeeds."""
    settings = world.app[settings_key]
    subscription_id = await pending_delivery_with_platform_down(world, simulator)
    backup = tmp_path / "backup.db"
    take_backup(settings, backup, capsys)
    before_restore = await moved_on(world, simulator, subscription_id)
    world.sim.go_down()
    retry = settings.reconcile.restore_retry_seconds
    gate = RetryGate(retry)

    await restart_on(world, settings, backup, aiohttp_client, sleep=gate)
    await asyncio.wait_for(gate.waiting.wait(), timeout=10)

    assert simulator.calls[before_restore:] == []
    assert (await restore_marker(world)).stage is generation.RestoreStage.SUPERSEDED
    pending = await world.rows("SELECT id FROM deliveries WHERE state IN ('pending', 'in_flight')")
    assert pending == []
    world.sim.come_up()
    gate.release()
    await restore_finished(world)
    await nothing_stale_was_sent(world, simulator, before_restore)


async def test_a_live_store_is_not_a_restore(
    world: PageWorld, simulator: PlatformSimulator
) -> None:
    subscription = world.sim.subscribe(STANDARD_CODE, quantity=2, **ORG)
    await world.settle()

    marker = await restore_marker(world)

    assert not marker.restore_pending
    assert [c.body["subscription_id"] for c in simulator.applied if c.body] == [
        subscription.subscription_id
    ]


async def test_mark_restored_marks_the_store_and_says_what_happens_next(
    world: PageWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(world.app[settings_key].store.path)

    assert main(["mark-restored", "--db", path]) == 0

    out = capsys.readouterr().out
    assert "store marked restored (generation 1, stage restored)" in out
    assert "reconciles with billing before sending" in out


def test_mark_restored_on_a_store_not_yet_migrated_says_to_migrate_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as connection:
        connection.execute("CREATE TABLE webhook_events (event_id TEXT PRIMARY KEY)")
    connection.close()

    assert main(["mark-restored", "--db", str(old)]) == 1

    err = capsys.readouterr().err
    assert "this store's schema predates the restore marker: run `broker migrate`" in err


async def test_the_console_overview_says_when_the_store_is_a_restored_backup(
    make_broker: BrokerFactory,
) -> None:
    client = await make_broker(ops=OPS)
    await sign_in(client)
    page = await (await client.get("/ops")).text()
    assert "a restored backup" not in page

    await client.app[store_key].write(
        partial(generation.mark_restored, by=generation.MarkedBy.OPERATOR, now=1.0)
    )

    page = await (await client.get("/ops")).text()
    assert "a restored backup" in page
    assert "stage restored" in page
    assert "Nothing is sent to the Developer Console until a reconciliation" in page
