"""Wires the console into the app when ``ops.password_hash`` is set; otherwise /ops stays a 404."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from broker.config import Settings
from broker.core.login_throttle import LoginThrottle, ThrottleLimits
from broker.ops import actions, bindings, duplicates, money, org_view, reconcile, replay, views
from broker.ops.access import codec_for
from broker.ops.appkeys import ops_codec_key, ops_hashing_key, ops_redactor_key, ops_throttle_key
from broker.ops.hashing_pool import HashingPool
from broker.ops.support import live_session
from broker.redaction import Redactor


def setup_ops(app: web.Application, settings: Settings, clock: Callable[[], float]) -> None:
    if not settings.ops.enabled:
        return
    app[ops_codec_key] = codec_for(settings, clock)
    app[ops_redactor_key] = Redactor(settings.secrets())
    ops = settings.ops
    app[ops_throttle_key] = LoginThrottle(
        ThrottleLimits(
            per_address_burst=ops.login_burst_per_address,
            per_address_per_minute=ops.login_per_minute_per_address,
            global_burst=ops.login_burst_global,
            global_per_minute=ops.login_per_minute_global,
            max_addresses=ops.login_addresses_tracked,
        )
    )
    app[ops_hashing_key] = HashingPool(
        threads=ops.password_hash_threads, queue=ops.password_hash_queue
    )
    app.on_cleanup.append(_close_hashing)
    app.middlewares.append(live_session)
    router = app.router
    router.add_get("/ops", views.home)
    router.add_get("/ops/login", actions.login_form)
    router.add_post("/ops/login", actions.login)
    router.add_post("/ops/logout", actions.logout)
    router.add_get("/ops/events", views.events)
    router.add_get("/ops/events/replay", replay.replay_range)  # before {event_id}
    router.add_post("/ops/events/replay", replay.replay_range)
    router.add_get("/ops/events/{event_id}", views.event)
    router.add_post("/ops/events/{event_id}/replay", replay.replay_one)
    router.add_get("/ops/deliveries", views.deliveries)
    router.add_post("/ops/deliveries/retry", actions.retry_dead)
    router.add_get("/ops/deliveries/{delivery_id}", views.delivery)
    router.add_post("/ops/deliveries/{delivery_id}/retry-now", actions.retry_now)
    router.add_get("/ops/parked", views.parked)
    router.add_get("/ops/money", money.money_events)
    router.add_get("/ops/parked/{subscription_id}/resolve", actions.resolve_form)
    router.add_post("/ops/parked/{subscription_id}/resolve", actions.resolve)
    router.add_get("/ops/bindings", bindings.bindings)
    router.add_post("/ops/bindings/{zuid}/decide", bindings.decide)
    router.add_get("/ops/unmapped", views.unmapped)
    router.add_get("/ops/audit", views.audit)
    router.add_get("/ops/reconcile", reconcile.runs)
    router.add_post("/ops/reconcile/run", reconcile.reconcile_now)
    router.add_get("/ops/reconcile/{run_id}", reconcile.run)
    router.add_get("/ops/missing", reconcile.missing)
    router.add_post("/ops/missing/{subscription_id}/cancel", reconcile.cancel_missing)
    router.add_get("/ops/subscriptions/{subscription_id}", views.story)
    router.add_get("/ops/orgs/{zgid}", org_view.org_view)
    router.add_get("/ops/orgs/{zgid}/cancel_duplicate", duplicates.cancel_duplicate_form)
    router.add_post("/ops/orgs/{zgid}/cancel_duplicate", duplicates.cancel_duplicate)


async def _close_hashing(app: web.Application) -> None:
    app[ops_hashing_key].close()
