"""The benchmark's servers: the bare aiohttp baseline, the broker as `broker serve` runs it, the
Developer Console simulator; each runs as `python bench/run.py --serve ROLE` in its own process
(bench/processes.py starts and stops them).
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
import sys
from dataclasses import asdict
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
    *, platform_url: str, db_path: Path, store_url: str | None, log_stream: Any, log_level: str
) -> tuple[web.Application, Any]:
    from pydantic import ValidationError

    from broker.app import create_app
    from broker.config import Settings
    from broker.logs import configure_logging
    from broker.store.engine.pg_admin import shown_url
    from broker.web.appkeys import metrics_key, store_key, worker_key

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
    if store_url:
        os.environ["BROKER_STORE__URL"] = store_url  # replicas share this database
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:  # its text would echo the database URL, password included
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise RuntimeError(f"the broker refused its settings: {problems}") from None
    in_force = settings.store.postgres_url
    if store_url and in_force != store_url:
        # An unknown setting would be ignored and the run would measure SQLite under the name
        # of another backend.
        raise RuntimeError(f"this broker has no store.url setting for {shown_url(store_url)}")
    # As `broker serve` does: JSON lines, INFO by default; to a file instead of stdout.
    configure_logging(level=log_level, fmt="json", secrets=settings.secrets(), stream=log_stream)
    app = create_app(settings)

    async def stats(request: web.Request) -> web.Response:
        store = request.app[store_key]
        counts = getattr(store, "stats", None)  # SQLite's group-commit counters
        webhooks = {
            sample.labels["outcome"]: int(sample.value)
            for metric in request.app[metrics_key].webhooks.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        }
        return web.json_response(
            {
                "webhooks": webhooks,
                "store": asdict(counts) | {"failures": len(counts.failures)} if counts else {},
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


async def _start(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
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
            runner, ready["port"] = await _start(baseline_app(), args.port)
            runners.append(runner)
        elif args.serve == "simulator":
            app, _ = simulator_app(log_stream)
            runner, ready["port"] = await _start(app, args.port)
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
                store_url=args.store_url,
                log_stream=log_stream,
                log_level=args.broker_log_level,
            )
            runner, ready["port"] = await _start(app, args.port)
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
    log_path = Path(args.log_file) if args.log_file else Path(os.devnull)
    with log_path.open("a", buffering=64 * 1024) as log_stream:
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            try:
                _run(serve(args, log_stream))
            finally:
                profiler.disable()
                profiler.dump_stats(args.cprofile)
        else:
            _run(serve(args, log_stream))
    return 0


def _run(main: Any) -> None:
    """Run a server on the loop `broker serve` uses (uvloop when installed)."""
    from broker.delivery.runtime import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main)
