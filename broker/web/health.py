"""Liveness, readiness and metrics endpoints for load balancers and monitoring."""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.delivery.reconcile import schedule_status
from broker.errors import StoreError
from broker.store.delivery_records import outbox_summary
from broker.store.heartbeat import write_heartbeat
from broker.store.monitoring import conflicting_subscriptions, parked_subscriptions
from broker.web.appkeys import (
    clock_key,
    daily_budget_key,
    metrics_key,
    settings_key,
    store_key,
    worker_key,
)

log = structlog.get_logger(__name__)

# Room for a few transactions: a disk that cannot take this much is not ready for webhooks.
PROBE_BYTES = 64 * 1024


async def healthz(request: web.Request) -> web.Response:
    """The process answers: nothing more is promised."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready means a real write reached the disk and the delivery worker is going round.

    An empty transaction proves nothing (SQLite writes no page for it), so the probe commits a
    heartbeat row, and writes and fsyncs a fresh file beside the database: a full disk fails the
    second even while the write-ahead log still has room for a small first.
    """
    store = request.app[store_key]
    checks: dict[str, str] = {}
    now = request.app[clock_key]()
    try:
        await asyncio.wait_for(store.write(partial(write_heartbeat, now=now)), timeout=5)
        checks["store"] = "ok"
    except (StoreError, TimeoutError) as exc:
        checks["store"] = f"failing: {_why(exc)}"
    directory = store.local_directory
    if directory is not None:  # PostgreSQL's disk is the server's; the heartbeat proves it
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(None, probe_disk, directory),
                timeout=5,
            )
            checks["disk"] = "ok"
        except (OSError, TimeoutError) as exc:
            checks["disk"] = f"failing: {_why(exc)}"
    checks["delivery_worker"] = "ok" if request.app[worker_key].alive else "not running"
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        log.warning("readyz.not_ready", **checks)
    return web.json_response(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "reconcile": schedule_status(request.app[settings_key]),
        },
        status=200 if ready else 503,
    )


def probe_disk(directory: Path) -> None:
    """Write, fsync and remove a fresh file of PROBE_BYTES beside the database."""
    path = directory / f".broker-readyz-{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _why(exc: BaseException) -> str:
    if isinstance(exc, StoreError):
        return exc.message
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[metrics_key]
    summary = await request.app[store_key].read(
        partial(outbox_summary, now=request.app[clock_key]())
    )
    for state, count in summary.counts.items():
        registry.deliveries.labels(str(state)).set(count)
    registry.oldest_pending.set(summary.oldest_pending_seconds)
    registry.parked.set(await request.app[store_key].read(parked_subscriptions))
    registry.conflicts.set(await request.app[store_key].read(conflicting_subscriptions))
    if daily_budget_key in request.app:
        figures = await request.app[daily_budget_key].figures()
        registry.billing_calls_today.set(figures.used)
        registry.billing_calls_left.set(figures.left)
        registry.billing_daily_limit.set(figures.limit)
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
