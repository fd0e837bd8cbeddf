"""Crash tests: a real ``broker serve`` process killed with SIGKILL (or stopped with SIGTERM).

The simulator runs in the test process, so faults are scripted and its recorded calls read
directly; the broker runs as a subprocess on its own port and database, so a kill is a real kill:
no cleanup code, no final commit. Each test then starts a fresh broker on the same database and
checks that every acknowledged event reaches the platform exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from broker.simulators.platform import PlatformSimulator
from tests.support.basics import (
    APP_DOMAIN,
    STORAGE_MONTHLY,
    ZAPIKEY,
    body_of,
    eventually,
    subscription_event,
)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
START_WITHIN = 20.0  # seconds for `broker serve` to answer /readyz 200
LEASE_SECONDS = 3.0
# A held call outlasts any wait in these tests: it is answered only if the broker is still there,
# so "killed before the platform answered" never depends on how fast the machine is.
HELD_SECONDS = 120.0
LOG_TAIL_CHARS = 6000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(none)"
    return text[-LOG_TAIL_CHARS:] or "(empty)"


def _open_log(path: Path) -> BinaryIO:
    return path.open("ab")


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Read the broker's database read-only, as an operator would while it runs."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def deliveries(db: Path) -> list[dict[str, Any]]:
    return query(db, "SELECT * FROM deliveries ORDER BY id")


def in_flight_count(db: Path) -> int:
    rows = query(db, "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'in_flight'")
    return int(rows[0]["n"])


def crash_events(count: int, *, tag: str) -> list[dict[str, Any]]:
    """New subscriptions, each its own org, user, customer and event id (all digits)."""
    return [
        subscription_event(
            subscription_id=f"{tag}{i:05d}",
            zgid=f"7{tag}{i:05d}",
            zuid=f"6{tag}{i:05d}",
            customer_id=f"9{tag}{i:05d}",
            email=f"owner{i}@example.com",
            event_id=f"8{tag}{i:05d}",
        )
        for i in range(count)
    ]


def subscription_ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["data"]["subscription"]["subscription_id"] for event in events]


def applied_adds(simulator: PlatformSimulator) -> Counter[str]:
    """Applied Add calls by subscription_id (dropped or aborted calls never count)."""
    return Counter(
        str(call.body["subscription_id"])
        for call in simulator.calls
        if call.applied and call.method == "POST" and call.body is not None
    )


def adds_sent(simulator: PlatformSimulator) -> Counter[str]:
    """Every Add the platform received, whatever became of it."""
    return Counter(
        str(call.body["subscription_id"])
        for call in simulator.calls
        if call.method == "POST" and call.body is not None
    )


@dataclass
class BrokerProcess:
    """One ``python -m broker serve`` child process and where its output goes."""

    proc: asyncio.subprocess.Process
    url: str
    db: Path
    stdout: Path
    stderr: Path
    env: dict[str, str] = field(repr=False)

    def logs(self) -> str:
        return (
            f"--- broker {self.url} exit={self.proc.returncode} stdout ---\n{_tail(self.stdout)}\n"
            f"--- stderr ---\n{_tail(self.stderr)}"
        )

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing more is committed."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        async def ready() -> bool:
            if self.proc.returncode is not None:
                raise AssertionError(f"broker exited before it was ready\n{self.logs()}")
            try:
                async with session.get(f"{self.url}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await self.eventually(ready, within=START_WITHIN, interval=0.05, message="/readyz 200")

    async def eventually(
        self,
        check: Callable[[], Awaitable[bool]] | Callable[[], bool],
        *,
        within: float,
        message: str,
        interval: float = 0.02,
    ) -> None:
        """``eventually`` with this broker's output attached when it times out."""
        try:
            await eventually(check, within=within, interval=interval, message=message)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    async def cli(self, *args: str) -> str:
        """Run ``python -m broker ARGS`` with this broker's environment; return stdout."""
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broker",
            *args,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(20):
            out, err = await child.communicate()
        assert child.returncode == 0, f"broker {' '.join(args)} failed: {err.decode()}"
        return out.decode()


BrokerStarter = Callable[..., Awaitable[BrokerProcess]]


@pytest.fixture
async def start_broker(tmp_path: Path, platform_server: TestServer) -> AsyncIterator[BrokerStarter]:
    """Start ``broker serve`` subprocesses on one database; kill any left over at teardown."""
    started: list[BrokerProcess] = []
    platform_url = str(platform_server.make_url("")).rstrip("/")
    db = tmp_path / "broker.db"

    async def start(**extra_env: str | None) -> BrokerProcess:
        """Start a broker; an ``extra_env`` value of None removes that variable."""
        port = _free_port()
        env = {name: value for name, value in os.environ.items() if not name.startswith("BROKER_")}
        env.update(
            {
                "BROKER_PLATFORM__APP_DOMAIN": APP_DOMAIN,
                "BROKER_PLATFORM__ZAPIKEY": ZAPIKEY,
                "BROKER_PLATFORM__BASE_URL": platform_url,
                "BROKER_STORE__PATH": str(db),
                "BROKER_SERVER__HOST": "127.0.0.1",
                "BROKER_SERVER__PORT": str(port),
                "BROKER_PLANS__STORAGE_ADDON_MONTHLY": STORAGE_MONTHLY,
                "BROKER_PLATFORM__REQUEST_TIMEOUT_SECONDS": "2",
                "BROKER_DELIVERY__LEASE_SECONDS": str(LEASE_SECONDS),
                "BROKER_DELIVERY__INITIAL_BACKOFF_SECONDS": "0.05",
                "BROKER_DELIVERY__MAX_BACKOFF_SECONDS": "0.2",
                "BROKER_DELIVERY__JITTER_SECONDS": "0",
                "BROKER_DELIVERY__POLL_INTERVAL_SECONDS": "0.1",
                "BROKER_LOG__FORMAT": "json",
                **{name: value for name, value in extra_env.items() if value is not None},
            }
        )
        for name in [name for name, value in extra_env.items() if value is None]:
            env.pop(name, None)
        number = len(started) + 1
        stdout, stderr = tmp_path / f"broker-{number}.out", tmp_path / f"broker-{number}.err"
        with _open_log(stdout) as out, _open_log(stderr) as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "broker",
                "serve",
                env=env,
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        broker = BrokerProcess(proc, f"http://127.0.0.1:{port}", db, stdout, stderr, env)
        started.append(broker)
        return broker

    try:
        yield start
    finally:
        for broker in started:
            await broker.kill()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # No keep-alive: a connection pooled to a killed broker must not be reused for the next one.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=15)
    ) as client:
        yield client


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> PlatformSimulator:
    """The platform simulator; tests may ask (indirectly) for duplicate_add="fail"."""
    return PlatformSimulator(ZAPIKEY, duplicate_add=getattr(request, "param", "accept"))


@dataclass
class Wire:
    """Requests the simulator has begun and finished handling (it records calls only at the end)."""

    started: int = 0
    finished: int = 0


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def platform_server(
    simulator: PlatformSimulator, wire: Wire, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> TestServer:
    """The simulator's own app, with a middleware that counts calls still in its hands."""

    @web.middleware
    async def watch(request: web.Request, handler: Handler) -> web.StreamResponse:
        wire.started += 1
        try:
            return await handler(request)
        finally:
            wire.finished += 1

    app = simulator.app()
    app.middlewares.append(watch)
    return await aiohttp_server(app)


async def post_webhook(
    session: aiohttp.ClientSession, broker: BrokerProcess, event: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "zapikey": ZAPIKEY}
    async with session.post(
        f"{broker.url}/webhooks/billing", data=body_of(event), headers=headers
    ) as response:
        return response.status, await response.json()


async def post_all(
    session: aiohttp.ClientSession, broker: BrokerProcess, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Post concurrently; every one must be acknowledged with 200."""
    answers = await asyncio.gather(*(post_webhook(session, broker, e) for e in events))
    for status, body in answers:
        assert status == 200, f"webhook answered {status}: {body}\n{broker.logs()}"
    return [body for _, body in answers]


async def wait_all_done(broker: BrokerProcess, sids: list[str], *, within: float) -> None:
    """Positive signal that processing finished: every delivery of these subscriptions is done."""

    def done() -> bool:
        rows = [r for r in deliveries(broker.db) if r["subscription_id"] in set(sids)]
        finished = {r["subscription_id"] for r in rows if r["state"] == "done"}
        return finished == set(sids) and all(r["state"] in ("done", "superseded") for r in rows)

    await broker.eventually(done, within=within, message="every delivery reaches 'done'")


async def test_kill_after_ack_before_delivery_loses_nothing(
    start_broker: BrokerStarter, simulator: PlatformSimulator, session: aiohttp.ClientSession
) -> None:
    """Events acknowledged while the platform is unreachable survive a SIGKILL and arrive once."""
    events = crash_events(20, tag="101")
    sids = subscription_ids(events)
    simulator.go_down()
    first = await start_broker()
    await first.wait_ready(session)

    acks = await post_all(session, first, events)
    assert {a["outcome"] for a in acks} == {"queued"}, acks
    # The broker is trying (and failing) to deliver when it dies.
    await simulator.wait_until(lambda s: len(s.calls) >= 1, timeout=10)
    await first.kill()
    assert simulator.applied == [], "nothing can be applied while the platform is down"

    simulator.come_up()
    second = await start_broker()
    await second.wait_ready(session)
    # In-flight leases (3 s) must expire before those deliveries are taken back.
    await second.eventually(
        lambda: set(applied_adds(simulator)) == set(sids),
        within=LEASE_SECONDS + 12,
        message="an applied Add for every acknowledged event",
    )
    await wait_all_done(second, sids, within=10)

    stored = {r["event_id"] for r in query(second.db, "SELECT event_id FROM webhook_events")}
    assert {e["event_id"] for e in events} <= stored
    assert applied_adds(simulator) == dict.fromkeys(sids, 1), second.logs()
    applied = [(c.method, c.body and c.body["subscription_id"]) for c in simulator.applied]
    assert sorted(applied) == sorted(("POST", sid) for sid in sids), "no Modify or Cancel either"


async def test_kill_mid_delivery_delivers_each_event_once(
    start_broker: BrokerStarter,
    simulator: PlatformSimulator,
    wire: Wire,
    session: aiohttp.ClientSession,
) -> None:
    """Calls cut off by SIGKILL are never committed; the restarted broker sends each again, once."""
    events = crash_events(20, tag="102")
    sids = subscription_ids(events)
    simulator.set_delay(HELD_SECONDS)
    first = await start_broker()
    await first.wait_ready(session)

    await post_all(session, first, events)
    await first.eventually(
        lambda: in_flight_count(first.db) == len(events) and wire.started == len(events),
        within=20,
        message="every delivery claimed and its call inside the simulator",
    )
    answered_before_kill = len(simulator.calls)  # no await between this and the kill
    first.proc.send_signal(signal.SIGKILL)
    await first.proc.wait()
    assert answered_before_kill == 0, "a call finished before the kill; the test proves nothing"

    # The platform sees each client vanish and commits none of those calls.
    await first.eventually(
        lambda: wire.finished == wire.started, within=5, message="the cut-off calls to end"
    )
    assert simulator.applied == []
    assert simulator.calls, "the simulator recorded the calls it was holding"
    assert all(call.aborted for call in simulator.calls)
    simulator.set_delay(0)

    second = await start_broker()
    await second.wait_ready(session)
    await second.eventually(
        lambda: set(applied_adds(simulator)) == set(sids),
        within=LEASE_SECONDS + 12,
        message="an applied Add for every subscription after the leases expire",
    )
    await wait_all_done(second, sids, within=10)
    assert applied_adds(simulator) == dict.fromkeys(sids, 1), second.logs()

    listing = await second.cli("deliveries", "--db", str(second.db), "list", "--json")
    listed = [json.loads(line) for line in listing.splitlines()]
    assert sorted(row["subscription_id"] for row in listed) == sorted(sids)
    for row in listed:
        assert row["state"] == "done", row
        assert row["uncertain"] == 1, f"a taken-back lease is marked uncertain: {row}"
        assert row["attempts"] >= 2, f"the cut-off attempt is counted: {row}"


@dataclass(frozen=True)
class DeliveryCounts:
    """What a crash did to delivery, per subscription: the guarantee's three numbers."""

    delivered: int  # subscriptions the platform applied
    repeated: int  # of those, how many received more than one answered call
    lost: int  # acknowledged but never applied
    calls: int  # every Add/Modify the platform answered
    cut: int  # calls the crash cut off before the platform answered (it applied none)

    def line(self) -> str:
        return (
            f"delivered={self.delivered} repeated={self.repeated} lost={self.lost} "
            f"calls={self.calls} cut={self.cut}"
        )


def count_deliveries(simulator: PlatformSimulator, sids: list[str]) -> DeliveryCounts:
    """Count, never hide, what the platform received for these subscriptions."""
    by_sid: dict[str, list[Any]] = {sid: [] for sid in sids}
    cut = 0
    for call in simulator.calls:
        if call.body is None or call.method not in ("POST", "PUT"):
            continue
        if call.aborted:
            cut += call.body["subscription_id"] in by_sid
        else:
            by_sid.setdefault(str(call.body["subscription_id"]), []).append(call)
    calls = {sid: by_sid[sid] for sid in sids}
    return DeliveryCounts(
        cut=cut,
        delivered=sum(1 for c in calls.values() if any(x.applied for x in c)),
        repeated=sum(1 for c in calls.values() if len(c) > 1),
        lost=sum(1 for c in calls.values() if not any(x.applied for x in c)),
        calls=sum(len(c) for c in calls.values()),
    )


def assert_repeats_are_harmless(simulator: PlatformSimulator, sids: list[str]) -> None:
    """Each subscription's calls: one Add, then only repeats with the very same body (an Add
    again, or the Modify fallback when the platform refused it); it ends active at its org."""
    for sid in sids:
        calls = [c for c in simulator.calls if c.body and c.body["subscription_id"] == sid]
        assert calls, f"{sid}: no call at all"
        assert calls[0].method == "POST", (sid, [c.method for c in calls])
        for repeat in calls[1:]:
            assert repeat.method in ("POST", "PUT"), (sid, repeat.method)
            assert (repeat.zgid, repeat.planid, repeat.body) == (
                calls[0].zgid,
                calls[0].planid,
                calls[0].body,
            ), f"{sid}: a repeat with other content"
        held = simulator.subscriptions[f"7{sid}"]  # each subscription's own org (crash_events)
        assert (held.subscription_id, held.active) == (sid, True)
        assert (held.zuid, held.no_of_users) == (
            calls[0].body["zuid"],
            calls[0].body["no_of_users"],
        )


POOL = 3000  # more than can be posted before deliveries get going


@pytest.mark.parametrize("simulator", ["accept", "fail"], indirect=True)
async def test_kill_during_ingest_burst(
    start_broker: BrokerStarter,
    simulator: PlatformSimulator,
    wire: Wire,
    session: aiohttp.ClientSession,
    record_property: Callable[[str, object], None],
) -> None:
    """Every 200 survives a SIGKILL in the middle of a burst, with deliveries on the wire.

    The guarantee is "effectively once": nothing acknowledged is lost; a call cut by the crash
    may be sent again, with the same content. With ``fail`` the platform refuses a second Add (as
    the contract allows) and the repeat shows as a refused Add followed by a Modify; with
    ``accept`` it shows as a second Add. Repeats are counted and reported, not hidden.
    """
    pool = crash_events(POOL, tag="103")
    simulator.set_delay(0.02)  # a real platform takes a while, so calls are on the wire
    first = await start_broker()
    await first.wait_ready(session)

    acked: list[str] = []
    failed: list[str] = []
    posted: list[dict[str, Any]] = []
    at_kill: list[str] = []
    # At most 8 requests on the wire; posting goes on until the kill, so it lands mid-burst.
    connector = aiohttp.TCPConnector(limit=8, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as burst:
        waiting = iter(pool)

        async def poster() -> None:
            for event in waiting:
                posted.append(event)
                try:
                    status, body = await post_webhook(burst, first, event)
                except (aiohttp.ClientError, json.JSONDecodeError):
                    failed.append(event["event_id"])
                    return
                assert status == 200, body
                acked.append(event["event_id"])

        async def killer() -> None:
            # Once deliveries are flowing: some answered, more on the wire, ingest still going.
            await first.eventually(
                lambda: len(simulator.calls) >= 20 and wire.started > wire.finished,
                within=30,
                interval=0.001,
                message="deliveries under way during the burst",
            )
            first.proc.send_signal(signal.SIGKILL)
            at_kill.append(
                f"{len(acked)} acked, {len(simulator.calls)} calls answered, "
                f"{wire.started - wire.finished} on the wire"
            )

        await asyncio.gather(killer(), *(poster() for _ in range(8)))
    await first.proc.wait()
    print(f"at the kill: {at_kill}")
    assert failed, "the kill landed after the burst; the test proves nothing"
    assert len(posted) < POOL, "posting never met the kill"
    assert len(acked) + len(failed) == len(posted)
    events = posted
    sids = subscription_ids(events)
    simulator.set_delay(0)

    second = await start_broker()
    await second.wait_ready(session)
    stored = {r["event_id"] for r in query(second.db, "SELECT event_id FROM webhook_events")}
    assert set(acked) <= stored, f"acknowledged but lost: {set(acked) - stored}"
    stored_sids = [sid for sid, e in zip(sids, events, strict=True) if e["event_id"] in stored]
    await wait_all_done(second, stored_sids, within=LEASE_SECONDS + 20)
    after_crash = count_deliveries(simulator, stored_sids)
    summary = f"kill -9 mid-burst ({simulator_mode(simulator)}): {after_crash.line()}"
    record_property("after_crash", after_crash.line())
    print(summary)  # shown with -s or -rP; also in the junit XML through record_property
    assert after_crash.lost == 0, summary
    assert after_crash.delivered == len(stored_sids), summary
    assert_repeats_are_harmless(simulator, stored_sids)

    # Zoho resends everything: stored events are duplicates, the rest are new.
    answers = await post_all(session, second, events)
    outcomes = {e["event_id"]: a["outcome"] for e, a in zip(events, answers, strict=True)}
    for event_id, outcome in outcomes.items():
        assert (outcome == "duplicate") == (event_id in stored), (event_id, outcome)
    await wait_all_done(second, sids, within=20)
    assert count_deliveries(simulator, sids).lost == 0
    assert_repeats_are_harmless(simulator, sids)


def simulator_mode(simulator: PlatformSimulator) -> str:
    return f"duplicate Add {'refused' if simulator.refuses_duplicate_add else 'accepted'}"


async def test_kill_between_an_org_moves_cancel_and_add_converges(
    start_broker: BrokerStarter,
    simulator: PlatformSimulator,
    wire: Wire,
    session: aiohttp.ClientSession,
) -> None:
    """cf_zgid edited in billing; SIGKILL after the old org's Cancel, with the new org's Add on
    the wire: the restarted broker sends the Add (with the same body) and never a second Cancel."""
    (created,) = crash_events(1, tag="106")
    sid = created["data"]["subscription"]["subscription_id"]
    old_zgid, new_zgid, new_zuid = f"7{sid}", "7106099999", "6106099999"
    first = await start_broker()
    await first.wait_ready(session)
    await post_all(session, first, [created])
    await wait_all_done(first, [sid], within=10)

    simulator.set_delay(HELD_SECONDS, methods={"POST"})  # the Cancel passes, the Add is held
    moved = subscription_event(
        "subscription_renewed",
        subscription_id=sid,
        zgid=new_zgid,
        zuid=new_zuid,
        customer_id=f"9{sid}",
        email="owner0@example.com",
        event_id="8106099999",
    )
    await post_all(session, first, [moved])
    await first.eventually(
        lambda: wire.started == 3 and wire.finished == 2,
        within=5,
        message="the old org's Cancel answered and the new org's Add inside the simulator",
    )
    first.proc.send_signal(signal.SIGKILL)
    await first.proc.wait()
    await first.eventually(
        lambda: wire.finished == wire.started, within=5, message="the cut-off Add to end"
    )
    simulator.set_delay(0)

    second = await start_broker()
    await second.wait_ready(session)
    await second.eventually(
        lambda: new_zgid in simulator.subscriptions,
        within=LEASE_SECONDS + 12,
        message="the new org's Add after the lease expires",
    )
    await wait_all_done(second, [sid], within=10)

    calls = [(c.method, c.zgid, c.applied, c.aborted) for c in simulator.calls]
    assert calls == [
        ("POST", old_zgid, True, False),
        ("DELETE", old_zgid, True, False),
        ("POST", new_zgid, False, True),
        ("POST", new_zgid, True, False),
    ], second.logs()
    assert simulator.calls[2].body == simulator.calls[3].body, "a repeat has the same content"
    assert {z for z, held in simulator.subscriptions.items() if held.active} == {new_zgid}


async def test_sigterm_finishes_in_flight_calls(
    start_broker: BrokerStarter, simulator: PlatformSimulator, session: aiohttp.ClientSession
) -> None:
    """SIGTERM lets calls on the wire finish and be recorded, exits 0; the rest go out later."""
    events = crash_events(20, tag="104")
    sids = subscription_ids(events)
    simulator.set_delay(0.3)
    # Two calls at a time, so work is both on the wire and still queued when SIGTERM arrives.
    first = await start_broker(BROKER_DELIVERY__CONCURRENCY="2")
    await first.wait_ready(session)

    await post_all(session, first, events)
    await first.eventually(
        lambda: len(simulator.applied) >= 2 and in_flight_count(first.db) > 0,
        within=10,
        message="some calls answered and more on the wire",
    )
    on_the_wire = {r["id"] for r in deliveries(first.db) if r["state"] == "in_flight"}
    first.proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(10):
            await first.proc.wait()
    except TimeoutError:
        raise AssertionError(f"broker ignored SIGTERM for 10 s\n{first.logs()}") from None
    assert first.proc.returncode == 0, first.logs()

    assert [c for c in simulator.calls if c.aborted] == [], "no call was cut off"
    rows = deliveries(first.db)
    assert [r for r in rows if r["state"] == "in_flight"] == [], "every call was recorded"
    assert on_the_wire, "SIGTERM arrived with calls on the wire"
    assert {r["id"] for r in rows if r["state"] == "done"} >= on_the_wire
    done_before = {r["subscription_id"] for r in rows if r["state"] == "done"}
    assert done_before == set(applied_adds(simulator)), "the broker recorded what was applied"
    assert len(done_before) < len(sids), "work was left for the restarted broker"

    simulator.set_delay(0)
    second = await start_broker()
    await second.wait_ready(session)
    await wait_all_done(second, sids, within=15)
    assert adds_sent(simulator) == dict.fromkeys(sids, 1), second.logs()
    assert applied_adds(simulator) == dict.fromkeys(sids, 1)


def children_of(pid: int) -> list[int]:
    """The pids of a process's children, as the kernel lists them."""
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


@pytest.mark.slow
async def test_serve_delivers_from_its_own_process_with_a_key_from_a_file(
    start_broker: BrokerStarter,
    simulator: PlatformSimulator,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """`broker serve` delivers from its own process: it starts no child (so no other process's
    environment can carry a secret, and kill -9 of the service stops the deliveries with it),
    and it delivers with the zapikey read from a _FILE variable and a rotated key set in clear."""
    zapikey_file = tmp_path / "zapikey"
    zapikey_file.write_text(ZAPIKEY + "\n")
    zapikey_file.chmod(0o600)
    broker = await start_broker(
        BROKER_PLATFORM__ZAPIKEY=None,
        BROKER_PLATFORM__ZAPIKEY_FILE=str(zapikey_file),
        BROKER_WEBHOOKS__EXTRA_ZAPIKEYS=json.dumps(["rotated-webhook-key-0123456789"]),
    )
    await broker.wait_ready(session)

    [event] = crash_events(1, tag="106")
    await post_all(session, broker, [event])
    await wait_all_done(broker, subscription_ids([event]), within=20)
    assert applied_adds(simulator) == {event["data"]["subscription"]["subscription_id"]: 1}
    assert children_of(broker.proc.pid) == []
