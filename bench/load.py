"""The load runs: wrk against the bare handler, and one backend's broker run (N replicas on one
store, warm-up, ingest at 50 and at 10 connections, end to end, the exactly-once count).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.processes import Child, Processes, cpu_seconds, machine_busy_seconds
from bench.report import database_summary, start_py_spy, summarize_profile
from bench.servers import WEBHOOK_PATH
from bench.wrk import (
    THREAD_STRIDE,
    WrkResult,
    combine,
    lua_script,
    parse_wrk,
    split_connections,
    wrk_command,
)

WARMUP_BASE = 0
PHASE_BASES = {"c50": 100_000_000, "c10": 200_000_000}  # ids of the phases never meet


@dataclass
class Phase:
    """One measured wrk phase (all replicas together) and the CPU each process used in it."""

    result: WrkResult
    started_at: float  # time.monotonic(): comparable with the simulator's clock (same host)
    cpu: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return self.result.summary() | {"cpu_percent": self.cpu}


@dataclass
class Driver:
    """Runs wrk on this run's targets; one wrk process per target, connections split."""

    wrk: str
    workdir: Path
    threads: int

    def run(self, urls: list[str], run: str, base: int, connections: int, seconds: float) -> Any:
        # One script per replica, each numbering from its own base: two wrk processes with the
        # same script would send the same event ids, which the replicas rightly take as repeats.
        scripts = []
        for index in range(len(urls)):
            own_base = base + index * THREAD_STRIDE * (self.threads + 1)
            script = self.workdir / f"{run}-{own_base}.lua"
            script.write_text(lua_script(run, own_base))
            scripts.append(script)
        started_at = time.monotonic()
        procs = [
            subprocess.Popen(
                wrk_command(
                    self.wrk, url, script, connections=c, seconds=seconds, threads=self.threads
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for url, script, c in zip(
                urls, scripts, split_connections(connections, len(urls)), strict=True
            )
        ]
        outputs = [proc.communicate(timeout=seconds + 60)[0] for proc in procs]
        for proc, output in zip(procs, outputs, strict=True):
            if proc.returncode != 0:
                raise RuntimeError(f"wrk exited with {proc.returncode}:\n{output}")
        return combine([parse_wrk(output) for output in outputs]), started_at


def _cpu(children: dict[str, list[int]]) -> dict[str, float]:
    times = os.times()
    cpu = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in children.items()}
    cpu["wrk"] = times.children_user + times.children_system  # wrk runs are waited children
    cpu["machine"] = machine_busy_seconds()
    return cpu


def measure(
    driver: Driver,
    children: dict[str, list[int]],
    urls: list[str],
    run: str,
    phase: str,
    connections: int,
    seconds: float,
) -> Phase:
    before = _cpu(children)
    result, started_at = driver.run(urls, run, PHASE_BASES[phase], connections, seconds)
    after = _cpu(children)
    cpu = {name: round(100 * (after[name] - before[name]) / result.seconds, 1) for name in after}
    ours = sum(value for name, value in cpu.items() if name != "machine")
    # What other processes on this machine used meanwhile: the benchmark's noise floor.
    cpu["others"] = round(max(0.0, cpu.pop("machine") - ours), 1)
    return Phase(result, started_at, cpu)


def run_baseline(
    args: argparse.Namespace, procs: Processes, driver: Driver, seconds: dict[str, float]
) -> dict[str, Phase]:
    child = procs.start("baseline")
    urls = [child.url + WEBHOOK_PATH]
    try:
        driver.run(urls, "baseline-warm", WARMUP_BASE, 50, seconds["warmup"])
        return {
            phase: measure(
                driver, {"server": [child.pid]}, urls, "baseline", phase, conns, seconds["phase"]
            )
            for phase, conns in (("c50", 50), ("c10", 10))
        }
    finally:
        procs.stop(child)


# --------------------------------------------------------------------------------------------
# Delivery tracking, from the servers' light bench-only routes
# --------------------------------------------------------------------------------------------


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own loopback
        return json.loads(response.read())


def accepted_total(brokers: list[Child]) -> int:
    """Webhooks the replicas answered with a stored outcome (their metrics), in-flight ones too."""
    return sum(sum(get_json(f"{b.url}/_bench/stats")["webhooks"].values()) for b in brokers)


def wait_applied(sim_url: str, expected: int, deadline_s: float) -> dict[str, Any]:
    """Poll the simulator's progress route until ``expected`` calls were applied."""
    deadline = time.monotonic() + deadline_s
    while True:
        progress: dict[str, Any] = get_json(f"{sim_url}/_bench/progress")
        if progress["applied"] >= expected or time.monotonic() > deadline:
            progress["timed_out"] = progress["applied"] < expected
            return progress
        time.sleep(0.02)  # polling another process, bounded by the deadline above


def exactly_once(calls: list[dict[str, Any]], accepted: int) -> dict[str, Any]:
    """N accepted events -> N applied calls, each for its own subscription, none repeated."""
    applied = Counter(
        str((call.get("body") or {}).get("subscription_id")) for call in calls if call["applied"]
    )
    repeated = sum(n - 1 for n in applied.values())
    return {
        "accepted": accepted,
        "delivered": len(applied),
        "applied_calls": sum(applied.values()),
        "repeated": repeated,
        "calls_refused": sum(1 for call in calls if not call["applied"]),
        "ok": len(applied) == accepted and repeated == 0,
    }


@dataclass
class BackendRun:
    name: str
    store: str
    replicas: int
    phases: dict[str, Phase]
    end_to_end: dict[str, Any]
    exactly_once: dict[str, Any]
    database: dict[str, Any]
    profile: dict[str, Any] | None = None


def run_backend(
    args: argparse.Namespace,
    procs: Processes,
    driver: Driver,
    seconds: dict[str, float],
    *,
    store: str,
    replicas: int,
) -> BackendRun:
    """One backend: a simulator, ``replicas`` brokers on one store, the phases, the counts."""
    name = f"{'sqlite' if store == 'sqlite' else 'postgresql'}-r{replicas}"
    run = f"bench-{name}-{int(time.time())}"
    with contextlib.ExitStack() as cleanup:
        if store != "sqlite":
            # Each run gets a database of its own: events of an earlier run would make this
            # run's events "unchanged" (no call), and the exactly-once count meaningless.
            store = cleanup.enter_context(fresh_database(store, run))
        return _run_backend(
            args, procs, driver, seconds, store=store, replicas=replicas, name=name, run=run
        )


@contextlib.contextmanager
def fresh_database(url: str, run: str) -> Iterator[str]:
    """A new database on ``url``'s server for one run, dropped after it."""
    import psycopg  # only PostgreSQL runs need it

    name = "bench_" + run.replace("-", "_")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_backend(
    args: argparse.Namespace,
    procs: Processes,
    driver: Driver,
    seconds: dict[str, float],
    *,
    store: str,
    replicas: int,
    name: str,
    run: str,
) -> BackendRun:
    db_path = procs.workdir / f"{name}.db"
    sim = procs.start("simulator", name=f"{name}-simulator")
    common = ["--platform-url", sim.url, "--db", str(db_path)]
    common += ["--broker-log-level", args.broker_log_level]
    if store != "sqlite":
        common += ["--store-url", store]
    brokers: list[Child] = []
    try:
        for i in range(replicas):
            brokers.append(
                procs.start(
                    "broker", *common, name=f"{name}-broker{i}", profile=args.profile_broker
                )
            )
        urls = [b.url + WEBHOOK_PATH for b in brokers]
        children = {"broker": [b.pid for b in brokers], "simulator": [sim.pid]}
        driver.run(urls, run, WARMUP_BASE, 50, seconds["warmup"])
        warm, _ = settle(brokers, sim.url, args.deadline, "warm-up")  # outbox empty for (c)
        spy = start_py_spy(brokers[0].pid, procs.workdir / "py-spy.raw") if args.profile else None
        phases = {"c50": measure(driver, children, urls, run, "c50", 50, seconds["phase"])}
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(timeout=60)
        accepted, progress = settle(brokers, sim.url, args.deadline, "c50")
        e2e_events = accepted - warm
        e2e_seconds = progress["last_applied_at"] - phases["c50"].started_at
        phases["c10"] = measure(driver, children, urls, run, "c10", 10, seconds["phase"])
        accepted, _ = settle(brokers, sim.url, args.deadline, "c10")
        calls = get_json(f"{sim.url}/_sim/calls")["calls"]
    finally:
        for child in reversed(brokers):
            procs.stop(child)
        procs.stop(sim)
    profile = None
    if args.profile and (procs.workdir / "py-spy.raw").exists():
        profile = summarize_profile(procs.workdir / "py-spy.raw")
    return BackendRun(
        name=name,
        store="sqlite" if store == "sqlite" else "postgresql",
        replicas=replicas,
        phases=phases,
        end_to_end={
            "events": e2e_events,
            "seconds": round(e2e_seconds, 3),
            "events_per_s": round(e2e_events / e2e_seconds, 1) if e2e_seconds > 0 else 0.0,
            "lag_after_last_ack_s": round(e2e_seconds - phases["c50"].result.seconds, 3),
        },
        exactly_once=exactly_once(calls, accepted),
        database=database_summary(db_path) if store == "sqlite" else {},
        profile=profile,
    )


def settle(
    brokers: list[Child], sim_url: str, deadline_s: float, what: str
) -> tuple[int, dict[str, Any]]:
    """Wait until every accepted event was applied and no late answer raised the count.

    wrk stops with requests in flight; the broker still answers (and counts) them after wrk
    printed its summary, so the count is read again once the simulator caught up.
    """
    accepted = accepted_total(brokers)
    while True:
        progress = wait_applied(sim_url, accepted, deadline_s)
        if progress["timed_out"]:
            raise RuntimeError(f"{what} deliveries incomplete after {deadline_s}s: {progress}")
        again = accepted_total(brokers)
        if again == accepted:
            return accepted, progress
        accepted = again
