"""The benchmark's servers and their processes: the bare aiohttp baseline, the broker as `broker
serve` runs it, the Developer Console simulator; each started as `python bench/run.py --serve ROLE`
in its own process, waited for, measured (CPU) and stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results-latest.json"

APP_DOMAIN = "benchapp"
ZAPIKEY = "bench-zapikey-0123456789abcdef"
STORAGE_MONTHLY = f"{APP_DOMAIN}_storage"
STORAGE_YEARLY = f"{APP_DOMAIN}_storage_Y"
WEBHOOK_PATH = "/webhooks/billing"

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


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
    *, platform_url: str, db_path: Path, log_stream: Any, log_level: str
) -> tuple[web.Application, Any]:
    from broker.config import Settings
    from broker.logs import configure_logging
    from broker.web.app import create_app
    from broker.web.appkeys import store_key, worker_key

    # As `broker serve` is configured: through the environment.
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
    app = create_app(settings)

    async def stats(request: web.Request) -> web.Response:
        store = request.app[store_key]
        return web.json_response(
            {
                "store": asdict(store.stats) | {"failures": len(store.stats.failures)},
                "worker_busy": getattr(request.app[worker_key], "busy", None),
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
        ready_file.unlink(missing_ok=True)  # a server of the same role may have run before
        output = self.workdir / f"{role}.out"
        command = [
            sys.executable,
            str(BENCH_DIR / "run.py"),
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
    # The process and any children it started.
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
