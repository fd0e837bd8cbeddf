"""The load: distinct valid webhook bodies, the load generator, and one broker run (warm-up,
measured ingest, end-to-end delivery, the exactly-once check).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.report import database_summary, start_py_spy, summarize_profile
from bench.servers import (
    APP_DOMAIN,
    STORAGE_MONTHLY,
    WEBHOOK_PATH,
    ZAPIKEY,
    Child,
    Processes,
    cpu_seconds,
    machine_busy_seconds,
)
from broker.simulators.payloads import subscription_webhook

# --------------------------------------------------------------------------------------------
# Payloads: Zoho Billing's default webhook shape (broker/simulators/payloads.py)
# --------------------------------------------------------------------------------------------


def subscription_event(n: int, *, run: str) -> dict[str, Any]:
    """A distinct, valid ``subscription_created`` event: its own subscription, customer and org.

    ``n`` numbers the event within the run; ``run`` keeps event ids apart between runs.
    """
    hours, rest = divmod(n, 3600)
    minutes, seconds = divmod(rest, 60)
    updated = (
        f"2026-11-{1 + (hours // 24) % 28:02d}T{hours % 24:02d}:{minutes:02d}:{seconds:02d}+0530"
    )
    return subscription_webhook(
        event_id=f"{run}-{n}",
        event_type="subscription_created",
        subscription_id=f"{100000000000000000 + n}",
        status="live",
        plan_code=f"{APP_DOMAIN}_1001",
        quantity=1 + n % 50,
        addons=[{"addon_code": STORAGE_MONTHLY, "name": "Storage", "price": 5.0, "quantity": 2}],
        updated_time=updated,
        customer_id=f"{900000000000000000 + n}",
        email=f"owner{n}@example.com",
        zuid=f"{60000000000 + n}",
        zgid=f"{70000000000 + n}",
        org_name=f"Bench Org {n}",
        plan_name="Bench plan",
        subscription_number=f"SUB-{n:06d}",
    )


def event_bodies(first: int, count: int, *, run: str) -> list[bytes]:
    return [
        json.dumps(subscription_event(n, run=run)).encode() for n in range(first, first + count)
    ]


# --------------------------------------------------------------------------------------------
# Load generator
# --------------------------------------------------------------------------------------------


def quarter_rates(moments: list[float]) -> list[float]:
    """Events/s in each quarter of ``moments`` (sorted seconds from the phase start)."""
    if len(moments) < 8:
        return []
    cuts = [0.0] + [moments[len(moments) * q // 4 - 1] for q in range(1, 5)]
    per_quarter = len(moments) // 4
    return [round(per_quarter / max(cuts[q + 1] - cuts[q], 1e-9), 1) for q in range(4)]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_s: list[float]
    statuses: Counter[int]
    errors: Counter[str]
    bodies: list[bytes | None]
    started_at: float  # time.monotonic(): comparable with the simulator's clock (same host)
    cpu: dict[str, float] = field(default_factory=dict)
    finished_s: list[float] = field(default_factory=list)  # answer times, from the phase start

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def quarter_rates(self) -> list[float]:
        """req/s in each quarter of the requests: a falling trend means the server slows down."""
        return quarter_rates(self.finished_s)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[index] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.rate, 1),
            "p50_ms": round(self.percentile_ms(0.50), 2),
            "p90_ms": round(self.percentile_ms(0.90), 2),
            "p99_ms": round(self.percentile_ms(0.99), 2),
            "max_ms": round(max(self.latencies_s, default=0) * 1000, 2),
            "req_per_s_by_quarter": self.quarter_rates(),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "cpu_percent": self.cpu,
        }


async def post_all(
    session: aiohttp.ClientSession, url: str, bodies: list[bytes], concurrency: int
) -> LoadResult:
    """POST every body once, from ``concurrency`` workers sharing one list of work."""
    headers = {"Content-Type": "application/json", "zapikey": ZAPIKEY}
    latencies = [0.0] * len(bodies)
    finished = [0.0] * len(bodies)
    answers: list[bytes | None] = [None] * len(bodies)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    work: Iterator[tuple[int, bytes]] = iter(enumerate(bodies))

    async def worker() -> None:
        for index, body in work:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    answers[index] = await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
            finished[index] = time.perf_counter()
            latencies[index] = finished[index] - started

    started_at = time.monotonic()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    result = LoadResult(len(bodies), seconds, latencies, statuses, errors, answers, started_at)
    result.finished_s = sorted(moment - started for moment in finished)
    return result


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def load_phase(
    url: str,
    warmup: list[bytes],
    measured: list[bytes],
    concurrency: int,
    cpu_of: Callable[[], dict[str, float]],
    between: Callable[[], Awaitable[None]] | None = None,
) -> tuple[LoadResult, LoadResult]:
    async with _session(concurrency) as session:
        warm = await post_all(session, url, warmup, concurrency)
        if between is not None:
            await between()
        before = cpu_of()
        result = await post_all(session, url, measured, concurrency)
        after = cpu_of()
    result.cpu = {
        name: round(100 * (after[name] - before[name]) / result.seconds, 1) for name in after
    }
    ours = sum(value for name, value in result.cpu.items() if name != "machine")
    # What other processes on this machine used meanwhile: the benchmark's noise floor.
    result.cpu["others"] = round(max(0.0, result.cpu.pop("machine") - ours), 1)
    return warm, result


# --------------------------------------------------------------------------------------------
# Delivery tracking and the exactly-once check
# --------------------------------------------------------------------------------------------


async def wait_applied(
    session: aiohttp.ClientSession, sim_url: str, expected: int, deadline_s: float
) -> dict[str, Any]:
    """Poll the simulator's light progress route until ``expected`` calls were applied."""
    deadline = time.monotonic() + deadline_s
    while True:
        async with session.get(f"{sim_url}/_bench/progress") as response:
            progress: dict[str, Any] = await response.json()
        if progress["applied"] >= expected or time.monotonic() > deadline:
            progress["timed_out"] = progress["applied"] < expected
            return progress
        await asyncio.sleep(0.02)  # polling interval, bounded by the deadline above


async def simulator_calls(session: aiohttp.ClientSession, sim_url: str) -> list[dict[str, Any]]:
    async with session.get(f"{sim_url}/_sim/calls") as response:
        document: dict[str, Any] = await response.json()
    return list(document["calls"])


def acknowledged_subscriptions(
    result: LoadResult, bodies: list[bytes]
) -> tuple[set[str], Counter[str]]:
    """Subscription ids whose webhook the broker acknowledged; and the outcomes it gave."""
    acked: set[str] = set()
    outcomes: Counter[str] = Counter()
    for answer, body in zip(result.bodies, bodies, strict=True):
        if answer is None:
            outcomes["no answer"] += 1
            continue
        try:
            document = json.loads(answer)
        except json.JSONDecodeError:
            outcomes["not json"] += 1
            continue
        outcomes[str(document.get("outcome") or document.get("code") or "?")] += 1
        if document.get("status") == "accepted":
            acked.add(json.loads(body)["data"]["subscription"]["subscription_id"])
    return acked, outcomes


def check_exactly_once(
    calls: list[dict[str, Any]], acked: set[str], sent: set[str]
) -> dict[str, Any]:
    applied = Counter(
        str((call.get("body") or {}).get("subscription_id")) for call in calls if call["applied"]
    )
    missing = sorted(acked - applied.keys())
    doubled = {sid: n for sid, n in applied.items() if n > 1}
    unacknowledged = sorted(applied.keys() - acked)
    foreign = [sid for sid in unacknowledged if sid not in sent]
    return {
        "acknowledged": len(acked),
        "applied_calls": sum(applied.values()),
        "calls_total": len(calls),
        "calls_not_applied": sum(1 for call in calls if not call["applied"]),
        "methods": dict(Counter(call["method"] for call in calls)),
        "missing": len(missing),
        "doubled": len(doubled),
        "applied_but_not_acknowledged": len(unacknowledged),
        "foreign": len(foreign),
        "examples": {"missing": missing[:5], "doubled": dict(list(doubled.items())[:5])},
        "ok": not missing and not doubled and not foreign,
    }


def run_baseline(args: argparse.Namespace, procs: Processes, counts: dict[str, int]) -> LoadResult:
    bodies = event_bodies(0, counts["warmup"] + counts["requests"], run="baseline")
    child = procs.start("baseline")
    try:
        _, result = asyncio.run(
            load_phase(
                child.url + WEBHOOK_PATH,
                bodies[: counts["warmup"]],
                bodies[counts["warmup"] :],
                args.concurrency,
                lambda: {
                    "server": cpu_seconds(child.pid),
                    "load_generator": cpu_seconds(None),
                    "machine": machine_busy_seconds(),
                },
            )
        )
    finally:
        procs.stop(child)
    return result


@dataclass
class BrokerRun:
    ingest: LoadResult
    end_to_end: dict[str, Any]
    exactly_once: dict[str, Any]
    outcomes: dict[str, int]
    broker_stats: dict[str, Any]
    database: dict[str, Any]
    placement: str
    profile: dict[str, Any] | None = None


def run_broker(
    args: argparse.Namespace, procs: Processes, counts: dict[str, int], *, name: str = "broker"
) -> BrokerRun:
    """One broker run; ``name`` names its database file in the work directory."""
    workdir = procs.workdir
    run_id = f"bench-{name}-{int(time.time())}"
    warmup = event_bodies(0, counts["warmup"], run=run_id)
    measured = event_bodies(counts["warmup"], counts["requests"], run=run_id)
    db_path = workdir / f"{name}.db"
    separate = args.simulator == "separate"
    sim: Child | None = None
    broker_args = [
        "--db",
        str(db_path),
        "--broker-log-level",
        args.broker_log_level,
        "--switch-interval",
        str(args.switch_interval),
    ]
    if separate:
        sim = procs.start("simulator")
        broker_args = ["--platform-url", sim.url, *broker_args]
    broker = procs.start("broker", *broker_args, profile=args.profile_broker)
    sim_url = sim.url if sim else f"http://127.0.0.1:{broker.ready['sim_port']}"

    def cpu_of() -> dict[str, float]:
        cpu = {"broker": cpu_seconds(broker.pid), "load_generator": cpu_seconds(None)}
        if sim is not None:
            cpu["simulator"] = cpu_seconds(sim.pid)
        cpu["machine"] = machine_busy_seconds()
        return cpu

    spy: list[asyncio.subprocess.Process] = []

    async def drive() -> tuple[LoadResult, dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        async with _session(4) as control:

            async def warmup_delivered() -> None:
                progress = await wait_applied(control, sim_url, len(warmup), args.deadline)
                if progress["timed_out"]:
                    raise RuntimeError(f"warm-up deliveries incomplete: {progress}")
                if args.py_spy is not None:
                    spy.append(await start_py_spy(broker.pid, args.py_spy))

            cpu_start = cpu_of()
            _, result = await load_phase(
                broker.url + WEBHOOK_PATH,
                warmup,
                measured,
                args.concurrency,
                cpu_of,
                between=warmup_delivered,
            )
            acked_total = len(warmup) + sum(
                1 for answer in result.bodies if answer and b'"accepted"' in answer
            )
            progress = await wait_applied(control, sim_url, acked_total, args.deadline)
            cpu_end = cpu_of()
            for process in spy:
                process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                await process.wait()
            async with control.get(f"{broker.url}/_bench/stats") as response:
                stats = await response.json()
            calls = await simulator_calls(control, sim_url)
        stats["cpu_seconds_whole_run"] = {
            name: round(cpu_end[name] - cpu_start[name], 2) for name in cpu_end
        }
        return result, progress, stats, calls

    try:
        result, progress, stats, calls = asyncio.run(drive())
    finally:
        procs.stop(broker)
        if sim is not None:
            procs.stop(sim)

    acked, outcomes = acknowledged_subscriptions(result, measured)
    warm_ids = {json.loads(body)["data"]["subscription"]["subscription_id"] for body in warmup}
    sent = warm_ids | {
        json.loads(body)["data"]["subscription"]["subscription_id"] for body in measured
    }
    exactly_once = check_exactly_once(calls, acked | warm_ids, sent)

    measured_applied = [
        call["received_at"]
        for call in calls
        if call["applied"] and str((call.get("body") or {}).get("subscription_id")) in acked
    ]
    measured_applied.sort()
    last = max(measured_applied, default=None)
    e2e_seconds = (last - result.started_at) if last is not None else float("nan")
    end_to_end = {
        "events": len(acked),
        "applied": len(measured_applied),
        "seconds": round(e2e_seconds, 3),
        "events_per_s": round(len(acked) / e2e_seconds, 1) if last is not None else 0.0,
        "delivery_lag_after_last_ack_s": round(
            (last - result.started_at - result.seconds) if last is not None else float("nan"), 3
        ),
        "timed_out": progress["timed_out"],
        "applied_per_s_by_quarter": quarter_rates(
            [moment - result.started_at for moment in measured_applied]
        ),
    }
    return BrokerRun(
        ingest=result,
        end_to_end=end_to_end,
        exactly_once=exactly_once,
        outcomes=dict(outcomes),
        broker_stats=stats,
        database=database_summary(db_path),
        placement="separate process" if separate else "inside the broker process",
        profile=summarize_profile(args.py_spy)
        if args.py_spy is not None and args.py_spy.exists()
        else None,
    )
