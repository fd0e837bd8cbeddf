"""Liveness, readiness and metrics endpoints for load balancers and monitoring."""

from __future__ import annotations

import asyncio
from functools import partial

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .appkeys import clock_key, metrics_key, store_key, worker_key
from .errors import StoreError
from .outbox import outbox_summary


async def healthz(request: web.Request) -> web.Response:
    """The process answers: nothing more is promised."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready means a write transaction commits and the delivery worker is going round."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[store_key].write(_probe), timeout=5)
        checks["store"] = "ok"
    except (StoreError, TimeoutError) as exc:
        checks["store"] = f"failing: {type(exc).__name__}"
    checks["delivery_worker"] = "ok" if request.app[worker_key].alive else "not running"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


def _probe(db: object) -> None:
    """An empty job: committing it proves the writer thread and the disk both work."""


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[metrics_key]
    summary = await request.app[store_key].read(
        partial(outbox_summary, now=request.app[clock_key]())
    )
    for state, count in summary["counts"].items():
        registry.deliveries.labels(state).set(count)
    registry.oldest_pending.set(summary["oldest_pending_seconds"])
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
