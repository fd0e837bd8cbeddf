"""Manage Subscription page handlers: translate between the browser and the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import aiohttp_jinja2
import structlog
from aiohttp import web

from .appkeys import clock_key, metrics_key, settings_key, store_key, worker_key
from .landing import parse_landing
from .pipeline import record_landing_visit
from .queries import org_subscriptions

log = structlog.get_logger(__name__)


async def manage(request: web.Request) -> web.Response:
    """Landing: the Vertical Solution opens this with the signed-in user's details."""
    app = request.app
    sources: list[Mapping[str, str]] = [request.query]
    if request.method == "POST":
        form = await request.post()
        sources.append({k: v for k, v in form.items() if isinstance(v, str)})
    params = parse_landing(sources)
    result = await app[store_key].write(
        partial(
            record_landing_visit, params=params, settings=app[settings_key], now=app[clock_key]()
        )
    )
    if result is not None and result.queued:
        app[worker_key].wake()
    subscriptions = await app[store_key].read(partial(org_subscriptions, zgid=params.zgid))
    app[metrics_key].landing_visits.labels("shown").inc()
    log.info(
        "landing.visit",
        zuid=params.zuid,
        zgid=params.zgid,
        subscription_id=params.subscription_id,
        outcome=result.outcome if result else "no_subscription_named",
    )
    return aiohttp_jinja2.render_template(
        "manage.html", request, {"user": params, "subscriptions": subscriptions}
    )
