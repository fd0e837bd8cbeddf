"""Throughput and latency benchmark of the broker's webhook ingest and delivery, in one command.

    python bench/run.py            # full: 20,000 measured requests per phase
    python bench/run.py --quick    # 3,000 measured requests per phase

It measures, in one run:

(a) baseline: a bare aiohttp app whose POST handler reads the body and answers
    ``{"status": "accepted"}``; what the machine and aiohttp can do with no work at all;
(b) ingest: ``POST /webhooks/billing`` of the real broker app (``broker.app.create_app``), SQLite
    with synchronous=FULL and default group commit, distinct valid ``subscription_created`` events,
    each acknowledged only once durable; the platform simulator serves the Developer Console, so
    deliveries run at the same time;
(c) end-to-end: from the first measured webhook posted to the simulator having applied the Add of
    every acknowledged event; then checks every acknowledged event was applied exactly once.

Each server runs in its own process (``python bench/run.py --serve ROLE``): the load generator in
this process must not share an event loop (or, on 2 cores, a core) with the server it measures.
Latency is measured per request with ``time.perf_counter`` around post + read of the answer.

Nothing here imports ``tests``: the payload builder is a copy of ``tests/support.py``'s shape.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results-latest.json"

APP_DOMAIN = "benchapp"
ZAPIKEY = "bench-zapikey-0123456789abcdef"
STORAGE_MONTHLY = f"{APP_DOMAIN}_storage"
STORAGE_YEARLY = f"{APP_DOMAIN}_storage_Y"
WEBHOOK_PATH = "/webhooks/billing"

TARGET_RATIO = 0.15
TARGET_P99_MS = 30.0
TARGET_E2E_PER_S = 1500.0

FULL = {"requests": 20_000, "warmup": 1_000}
QUICK = {"requests": 3_000, "warmup": 300}

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------------------------
# Payloads: Zoho Billing's default webhook shape (a copy of tests/support.py's builder)
# --------------------------------------------------------------------------------------------


def subscription_event(n: int, *, run: str) -> dict[str, Any]:
    """A distinct, valid ``subscription_created`` event: its own subscription, customer and org.

    ``n`` numbers the event within the run; ``run`` keeps event ids apart between runs.
    """
    subscription_id = f"{100000000000000000 + n}"
    customer_id = f"{900000000000000000 + n}"
    zuid = f"{60000000000 + n}"
    zgid = f"{70000000000 + n}"
    hours, rest = divmod(n, 3600)
    minutes, seconds = divmod(rest, 60)
    updated = (
        f"2026-11-{1 + (hours // 24) % 28:02d}T{hours % 24:02d}:{minutes:02d}:{seconds:02d}+0530"
    )
    custom_fields = [
        {
            "customfield_id": "1",
            "label": "zuid",
            "api_name": "cf_zuid",
            "value": zuid,
            "data_type": "string",
        },
        {
            "customfield_id": "2",
            "label": "zgid",
            "api_name": "cf_zgid",
            "value": zgid,
            "data_type": "string",
        },
    ]
    subscription = {
        "subscription_id": subscription_id,
        "subscription_number": f"SUB-{n:06d}",
        "status": "live",
        "name": "Bench plan",
        "interval": 1,
        "interval_unit": "months",
        "current_term_starts_at": "2026-11-01",
        "current_term_ends_at": "2026-11-30",
        "next_billing_at": "2026-12-01",
        "created_time": "2026-11-01T09:00:00+0530",
        "updated_time": updated,
        "amount": 100.0,
        "currency_code": "USD",
        "plan": {
            "plan_code": f"{APP_DOMAIN}_1001",
            "plan_id": "5000000001",
            "name": "Pro",
            "price": 20.0,
            "quantity": 1 + n % 50,
        },
        "addons": [{"addon_code": STORAGE_MONTHLY, "name": "Storage", "price": 5.0, "quantity": 2}],
        "customer_id": customer_id,
        "customer": {
            "customer_id": customer_id,
            "display_name": f"Bench Org {n}",
            "first_name": "Ada",
            "last_name": "Owner",
            "email": f"owner{n}@example.com",
            "company_name": f"Bench Org {n}",
            "custom_fields": custom_fields,
            "custom_field_hash": {},
        },
        "custom_fields": [],
    }
    return {
        "event_id": f"{run}-{n}",
        "event_type": "subscription_created",
        "event_source": "api",
        "event_time": "2026-11-21",
        "event_time_formatted": "21/11/2026",
        "created_time": "2026-11-21T10:00:00+0530",
        "data": {"subscription": subscription},
    }


def event_bodies(first: int, count: int, *, run: str) -> list[bytes]:
    return [
        json.dumps(subscription_event(n, run=run)).encode() for n in range(first, first + count)
    ]


# --------------------------------------------------------------------------------------------
# Server side: `python bench/run.py --serve baseline|broker|simulator`
# --------------------------------------------------------------------------------------------


def baseline_app() -> web.Application:
    """The least an aiohttp webhook endpoint can do: read the body, answer accepted."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, accept)
    return app


def simulator_app(log_stream: Any) -> tuple[web.Application, Any]:
    """The Developer Console simulator plus one light bench-only progress route."""
    import structlog

    from broker.simulators.platform import PlatformSimulator

    if not structlog.is_configured():
        # The remote platform's own logging is not part of what we measure.
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(log_stream),
        )
    simulator = PlatformSimulator(ZAPIKEY)
    app = simulator.app()

    async def progress(request: web.Request) -> web.Response:
        calls = simulator.calls
        applied = [call.received_at for call in calls if call.applied]
        return web.json_response(
            {
                "calls": len(calls),
                "applied": len(applied),
                "last_applied_at": max(applied, default=None),
            }
        )

    app.router.add_get("/_bench/progress", progress)
    return app, simulator


def broker_app(
    *, platform_url: str, db_path: Path, log_stream: Any, log_level: str, delivery: str
) -> tuple[web.Application, Any]:
    from broker.config import Settings
    from broker.logs import configure_logging
    from broker.web.app import create_app
    from broker.web.appkeys import store_key, worker_key

    # As `broker serve` is configured: through the environment, which the delivery child reads.
    os.environ.update(
        {
            "BROKER_PLATFORM__APP_DOMAIN": APP_DOMAIN,
            "BROKER_PLATFORM__ZAPIKEY": ZAPIKEY,
            "BROKER_PLATFORM__BASE_URL": platform_url,
            "BROKER_STORE__PATH": str(db_path),  # synchronous, group commit: defaults
            "BROKER_PLANS__STORAGE_ADDON_MONTHLY": STORAGE_MONTHLY,
            "BROKER_PLANS__STORAGE_ADDON_YEARLY": STORAGE_YEARLY,
            "BROKER_LOG__LEVEL": log_level,
            "BROKER_LOG__FORMAT": "json",
        }
    )
    settings = Settings()  # type: ignore[call-arg]
    # As `broker serve` does: JSON lines, INFO by default; to a file instead of stdout.
    configure_logging(level=log_level, fmt="json", secrets=settings.secrets(), stream=log_stream)
    command = None
    if delivery == "process":  # what `broker serve` does by default
        command = [sys.executable, "-m", "broker", "deliver"]
    app = create_app(settings, delivery_command=command)

    async def stats(request: web.Request) -> web.Response:
        store = request.app[store_key]
        return web.json_response(
            {
                "store": asdict(store.stats) | {"failures": len(store.stats.failures)},
                "worker_busy": getattr(request.app[worker_key], "busy", None),
                "delivery": delivery,
                "settings": {
                    "synchronous": settings.store.synchronous,
                    "group_commit_max": settings.store.group_commit_max,
                    "delivery_concurrency": settings.delivery.concurrency,
                    "log_level": log_level,
                },
            }
        )

    app.router.add_get("/_bench/stats", stats)
    return app, settings


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    return runner, sock.getsockname()[1]


async def serve(args: argparse.Namespace, log_stream: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runners: list[web.AppRunner] = []
    ready: dict[str, Any] = {"pid": os.getpid()}
    try:
        if args.serve == "baseline":
            runner, ready["port"] = await _start(baseline_app())
            runners.append(runner)
        elif args.serve == "simulator":
            app, _ = simulator_app(log_stream)
            runner, ready["port"] = await _start(app)
            runners.append(runner)
        else:
            platform_url = args.platform_url
            if platform_url is None:  # the simulator shares this process and its event loop
                sim, _ = simulator_app(log_stream)
                runner, ready["sim_port"] = await _start(sim)
                runners.append(runner)
                platform_url = f"http://127.0.0.1:{ready['sim_port']}"
            app, _ = broker_app(
                platform_url=platform_url,
                db_path=Path(args.db),
                log_stream=log_stream,
                log_level=args.broker_log_level,
                delivery=args.delivery,
            )
            runner, ready["port"] = await _start(app)
            runners.append(runner)
        _write_ready(Path(args.ready_file), ready)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _write_ready(path: Path, ready: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(ready))
    partial.replace(path)  # atomic: the parent never reads half a file


def _die_with_parent() -> None:
    """If the benchmark is killed outright (SIGKILL), the kernel sends us SIGTERM (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the benchmark still stops its servers on Ctrl-C, errors and SIGTERM


def serve_main(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    _die_with_parent()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    log_path = Path(args.log_file) if args.log_file else Path(os.devnull)
    with log_path.open("a", buffering=64 * 1024) as log_stream:
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            try:
                _run(serve(args, log_stream))
            finally:
                profiler.disable()
                profiler.dump_stats(args.profile)
        else:
            _run(serve(args, log_stream))
    return 0


def _run(main: Any) -> None:
    """Run a server on the loop `broker serve` uses (uvloop when installed)."""
    from broker.delivery.runtime import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main)


# --------------------------------------------------------------------------------------------
# Processes: start, wait until ready, measure CPU, stop (also on errors and Ctrl-C)
# --------------------------------------------------------------------------------------------


@dataclass
class Child:
    role: str
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]
    output: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ready['port']}"


class Processes:
    """Every child this run starts; ``stop_all`` ends each by its own pid, newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def start(self, role: str, *extra: str, profile: Path | None = None) -> Child:
        ready_file = self.workdir / f"{role}.ready"
        output = self.workdir / f"{role}.out"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            role,
            "--ready-file",
            str(ready_file),
            "--log-file",
            str(self.workdir / f"{role}.log"),
            *extra,
        ]
        if profile is not None:
            command += ["--profile", str(profile)]
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
            )
        child = Child(role, proc, {}, output)
        self.children.append(child)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready_file.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} server exited early:\n{_tail(output)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{role} server not ready in {READY_TIMEOUT_S}s:\n{_tail(output)}"
                )
            time.sleep(0.02)  # waiting for another process to bind its port
        child.ready = json.loads(ready_file.read_text())
        return child

    def stop(self, child: Child) -> None:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads); None means this process."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    total = 0.0
    # The process and its children (the broker's delivery process is one).
    for each in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


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


async def start_py_spy(pid: int, output: Path) -> asyncio.subprocess.Process:
    """Sample every thread of the broker process while the measured phase and its deliveries run."""
    executable = shutil.which("py-spy")
    if executable is None:
        raise RuntimeError("--py-spy needs py-spy on PATH (pip install py-spy)")
    process = await asyncio.create_subprocess_exec(
        executable,
        "record",
        "--pid",
        str(pid),
        "--threads",
        "--gil",  # only the thread holding the GIL: where CPU goes, not who waits
        "--nonblocking",
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # give py-spy time to attach before the measured requests start
    return process


def summarize_profile(path: Path, top: int = 14) -> dict[str, Any]:
    """Where the broker process's CPU went: py-spy samples of the thread holding the GIL.

    By thread; by broker function, inclusive (share of samples with it anywhere on the stack);
    by innermost broker function (the broker code that called the library doing the work); by
    the package of the leaf frame (the code that was actually running).
    """
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        thread_frame, *frames = stack.split(";")
        thread = thread_frame.rpartition(":")[2].strip() or thread_frame
        functions = [_function_of(frame) for frame in frames]
        ours = [name for name in functions if name.startswith("broker/")]
        total += samples
        threads[thread] += samples
        for name in set(ours):
            inclusive[f"[{thread}] {name}"] += samples
        innermost[f"[{thread}] {ours[-1] if ours else '(no broker frame)'}"] += samples
        packages[functions[-1].split(" ", 1)[0].split("/", 1)[0] if functions else "?"] += samples

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "threads": shares(threads),
        "broker_inclusive": shares(inclusive),
        "innermost_broker_function": shares(innermost),
        "leaf_package": shares(packages),
    }


def _function_of(frame: str) -> str:
    """'f (broker/store/pipeline.py:117)' -> 'broker/store/pipeline.py f'."""
    name, _, where = frame.rpartition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{file} {name}"


def database_summary(db_path: Path) -> dict[str, Any]:
    """What the broker's own database says after it stopped (read-only)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        deliveries = dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))
        events = dict(conn.execute("SELECT outcome, COUNT(*) FROM webhook_events GROUP BY outcome"))
        attempts = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return {
        "deliveries": deliveries,
        "webhook_events": events,
        "attempts": attempts,
        "journal_mode": journal,
        "reader_synchronous_default": synchronous,
    }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def machine_info(workdir: Path) -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(load1, 2), round(load5, 2)],
        "data_dir": str(workdir),
        "data_fs": _filesystem_of(workdir),
    }


def _filesystem_of(path: Path) -> str:
    """The mount's filesystem type: tmpfs would make fsync free and the figures dishonest."""
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


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


def run_broker(args: argparse.Namespace, procs: Processes, counts: dict[str, int]) -> BrokerRun:
    workdir = procs.workdir
    run_id = f"bench-{int(time.time())}"
    warmup = event_bodies(0, counts["warmup"], run=run_id)
    measured = event_bodies(counts["warmup"], counts["requests"], run=run_id)
    db_path = workdir / "broker.db"
    separate = args.simulator == "separate"
    sim: Child | None = None
    broker_args = [
        "--db",
        str(db_path),
        "--broker-log-level",
        args.broker_log_level,
        "--delivery",
        args.delivery,
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


def verdict(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def report(
    args: argparse.Namespace,
    info: dict[str, Any],
    baseline: LoadResult,
    run: BrokerRun,
    counts: dict[str, int],
) -> dict[str, Any]:
    a, b = baseline.summary(), run.ingest.summary()
    ratio = run.ingest.rate / baseline.rate
    e2e = run.end_to_end
    once = run.exactly_once
    checks = {
        "ratio": ratio >= TARGET_RATIO,
        "p99": b["p99_ms"] < TARGET_P99_MS,
        "end_to_end": e2e["events_per_s"] >= TARGET_E2E_PER_S and not e2e["timed_out"],
        "exactly_once": once["ok"] and not e2e["timed_out"],
        "no_errors": not b["errors"] and set(b["statuses"]) == {"200"},
    }
    width = 78
    lines = [
        "=" * width,
        f"broker benchmark  ({'quick' if args.quick else 'full'}: {counts['requests']:,} measured"
        f" requests per phase, {counts['warmup']:,} warm-up, {args.concurrency} connections)",
        f"python {info['python']}, aiohttp {info['aiohttp']}, {info['cpus']} CPUs, "
        f"load average before {info['loadavg_before'][0]} / {info['loadavg_before'][1]}",
        f"database: {info['data_dir']} ({info['data_fs']}), synchronous="
        f"{run.broker_stats['settings']['synchronous']}, group_commit_max="
        f"{run.broker_stats['settings']['group_commit_max']}; broker log level "
        f"{args.broker_log_level} (JSON lines to a file); deliveries: {args.delivery}",
        f"simulator: {run.placement}; load generator: this process, aiohttp client",
        "-" * width,
        f"{'phase':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  cpu %",
    ]

    def row(name: str, s: dict[str, Any]) -> str:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_percent"].items())
        return (
            f"{name:<34}{s['req_per_s']:>9,.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
            f"{s['max_ms']:>9.1f}  {cpu}"
        )

    lines += [
        row("(a) bare aiohttp handler", a),
        row("(b) broker ingest (durable ack)", b),
        "-" * width,
        f"(b)/(a) throughput ratio          {ratio:>9.3f}   target >= {TARGET_RATIO}"
        f"   {verdict(checks['ratio'])}",
        f"(b) p99 ack latency               {b['p99_ms']:>9.2f}   target < {TARGET_P99_MS:.0f} ms"
        f"   {verdict(checks['p99'])}",
        f"(c) end-to-end events/s           {e2e['events_per_s']:>9,.0f}   target >= "
        f"{TARGET_E2E_PER_S:,.0f}   {verdict(checks['end_to_end'])}",
        f"    {e2e['applied']:,} of {e2e['events']:,} acknowledged events applied in "
        f"{e2e['seconds']:.2f} s; last Add {e2e['delivery_lag_after_last_ack_s']:.2f} s "
        "after the last ack",
        f"exactly once: {once['applied_calls']:,} applied calls for {once['acknowledged']:,} "
        f"acknowledged events (incl. warm-up); missing {once['missing']}, doubled "
        f"{once['doubled']}, not acknowledged {once['applied_but_not_acknowledged']}, "
        f"calls refused {once['calls_not_applied']}   {verdict(checks['exactly_once'])}",
        "by quarter of the run: (b) req/s "
        + " / ".join(f"{rate:,.0f}" for rate in b["req_per_s_by_quarter"])
        + "; (c) Adds applied/s "
        + " / ".join(f"{rate:,.0f}" for rate in e2e["applied_per_s_by_quarter"]),
        f"broker answers: {run.outcomes}; HTTP {b['statuses']}"
        + (f"; client errors {b['errors']}" if b["errors"] else ""),
        f"group commit: {run.broker_stats['store']['jobs']:,} write jobs in "
        f"{run.broker_stats['store']['transactions']:,} transactions (largest "
        f"{run.broker_stats['store']['largest_group']}); deliveries {run.database['deliveries']}",
        "=" * width,
    ]
    if run.profile is not None:
        lines.append(
            f"py-spy --gil, broker process, {run.profile['samples']:,} samples of the thread "
            f"holding the GIL (raw: {args.py_spy})"
        )
        for title, key in (
            ("thread", "threads"),
            ("broker function, inclusive", "broker_inclusive"),
            ("innermost broker function", "innermost_broker_function"),
            ("package of the running code", "leaf_package"),
        ):
            lines.append(f"  by {title}:")
            lines += [f"    {share:5.1f}%  {name}" for name, share in run.profile[key]]
        lines.append("=" * width)
    print("\n".join(lines))
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "concurrency": args.concurrency,
        "warmup": counts["warmup"],
        "simulator": run.placement,
        "broker_log_level": args.broker_log_level,
        "baseline": a,
        "ingest": b,
        "ratio": round(ratio, 4),
        "end_to_end": e2e,
        "exactly_once": once,
        "broker_outcomes": run.outcomes,
        "broker_stats": run.broker_stats,
        "database": run.database,
        "targets": {
            "ratio_min": TARGET_RATIO,
            "p99_ms_max": TARGET_P99_MS,
            "end_to_end_per_s_min": TARGET_E2E_PER_S,
        },
        "checks": checks,
        "profile": run.profile,
        "broker_env_overrides": sorted(k for k in os.environ if k.upper().startswith("BROKER_")),
    }


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def bench_main(args: argparse.Namespace) -> int:
    counts = dict(QUICK if args.quick else FULL)
    if args.requests:
        counts["requests"] = args.requests
    if args.warmup is not None:
        counts["warmup"] = args.warmup
    base = Path(args.data_dir) if args.data_dir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="broker-bench-", dir=base))
    procs = Processes(workdir)
    info = machine_info(workdir)
    # `kill` (SIGTERM) of the benchmark must stop its servers too: unwind through `finally`.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    overrides = sorted(k for k in os.environ if k.upper().startswith("BROKER_"))
    if overrides:
        print(f"note: broker settings from the environment apply: {', '.join(overrides)}")
    print(
        f"running: baseline, then broker (simulator: {args.simulator}); "
        f"{counts['requests']:,} requests each; work dir {workdir}",
        flush=True,
    )
    try:
        baseline = run_baseline(args, procs, counts)
        print(f"  (a) done: {baseline.rate:,.0f} req/s", flush=True)
        run = run_broker(args, procs, counts)
        print(f"  (b) done: {run.ingest.rate:,.0f} req/s", flush=True)
        summary = report(args, info, baseline, run, counts)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        return 130
    except (RuntimeError, aiohttp.ClientError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {workdir} (databases, server logs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summary["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()[:2]]
    line = json.dumps(summary, sort_keys=True)
    out = Path(args.json_out) if args.json_out else RESULTS_FILE
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"JSON (also in {out}):")
    print(line)
    return 0 if summary["checks"]["exactly_once"] and summary["checks"]["no_errors"] else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 requests instead of 20,000")
    parser.add_argument("--requests", type=int, default=0, help="measured requests per phase")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per phase")
    parser.add_argument("--concurrency", type=int, default=50, help="connections (default 50)")
    parser.add_argument(
        "--simulator",
        choices=("separate", "inprocess"),
        default="separate",
        help="run the Developer Console simulator in its own process (default) or in the "
        "broker's process and event loop",
    )
    parser.add_argument(
        "--delivery",
        choices=("process", "inline"),
        default="process",
        help="the broker's deliveries in a child process, as `broker serve` runs them (default),"
        " or inline in the web process",
    )
    parser.add_argument(
        "--broker-log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="the broker's log level (default INFO, as in production)",
    )
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds to wait for deliveries"
    )
    parser.add_argument("--data-dir", help="where the temporary work dir goes (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (db, logs)")
    parser.add_argument("--json-out", help=f"JSON results file (default {RESULTS_FILE})")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="sample the broker process with py-spy (all threads) during phase (b) and its "
        "deliveries; raw stacks go to this file and a summary is printed",
    )
    parser.add_argument(
        "--profile-broker", type=Path, help="cProfile the broker process (main thread) to this file"
    )
    # Server side (used by the benchmark itself to start its servers).
    parser.add_argument(
        "--serve", choices=("baseline", "broker", "simulator"), help=argparse.SUPPRESS
    )
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--log-file", help=argparse.SUPPRESS)
    parser.add_argument("--platform-url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--switch-interval", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            return serve_main(args)
        return 0
    if args.profile_broker is not None:
        args.profile_broker = args.profile_broker.resolve()
    if args.py_spy is not None:
        args.py_spy = args.py_spy.resolve()
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
