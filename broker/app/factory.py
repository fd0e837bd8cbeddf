"""The application factory: settings in, a fully wired ``web.Application`` out.

It builds the app's middlewares, templates and keys, lists the resources it holds open
(``resources``) and adds every route: the webhook edge and health (``web``), the page
(``manage``) and the console (``ops``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from broker import __version__
from broker.app.resources import (
    billing_context,
    delivery_worker_context,
    http_session_context,
    reconcile_context,
    refusals_context,
    retention_context,
    stop_claiming,
    store_context,
)
from broker.config import LandingVerification, Settings
from broker.core.billing_status import BillingStatus
from broker.core.pause_terms import PAUSE_EFFECTS
from broker.manage import duplicate_cancel, oidc_pages
from broker.manage.appkeys import session_codec_key
from broker.manage.identity import log_verification_mode
from broker.manage.pages import checkout_return, manage
from broker.manage.plan_actions import subscribe, subscribe_form
from broker.manage.plan_change import change, change_confirm_form, change_form
from broker.manage.sessions import SessionCodec
from broker.manage.subscription_actions import (
    cancel,
    cancel_form,
    pause,
    pause_form,
    reactivate,
    resume,
)
from broker.metrics import Metrics
from broker.ops.routes import setup_ops
from broker.web.appkeys import (
    clock_key,
    csp_key,
    metrics_key,
    settings_key,
    sleep_key,
)
from broker.web.health import healthz, metrics, readyz
from broker.web.middlewares import (
    billing_priority,
    content_security_policy,
    error_answers,
    request_context,
    security_headers,
)
from broker.web.request_body import request_body_guard
from broker.web.webhook_refusals import WEBHOOK_PATH, count_webhook_refusals
from broker.web.webhooks import receive_billing_webhook

STATIC_DIR = Path(__file__).resolve().parent.parent / "manage" / "static"
# How billing statuses read on the page.
STATUS_LABELS: dict[str, str] = {
    BillingStatus.LIVE: "Live",
    BillingStatus.TRIAL: "Trial",
    BillingStatus.FUTURE: "Starts soon",
    BillingStatus.DUNNING: "Payment overdue",
    BillingStatus.UNPAID: "Unpaid",
    BillingStatus.NON_RENEWING: "Non-renewing",
    BillingStatus.CANCELLED: "Cancelled",
    BillingStatus.CANCELLED_FROM_DUNNING: "Cancelled (payment failed)",
    BillingStatus.EXPIRED: "Expired",
    BillingStatus.TRIAL_EXPIRED: "Trial ended",
    BillingStatus.CREATION_FAILED: "Not created",
    BillingStatus.PAUSED: "Paused",
    BillingStatus.DELETED: "Deleted",
}


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> web.Application:
    """The broker: webhooks, the Manage Subscription pages and the delivery worker.

    ``clock`` is the time everything is stamped with; ``sleep`` waits for it (the worker's naps).
    """
    app = web.Application(
        middlewares=[
            request_context,
            security_headers,
            error_answers,
            count_webhook_refusals,
            request_body_guard,
            billing_priority,
        ],
        # Our webhook handler enforces its own limit with a clear answer; this guards form posts.
        client_max_size=settings.server.max_body_bytes,
        # The rest of a body answered early (413, 408) is read and dropped for at most this long,
        # so a client still sending can read the answer; then the connection closes.
        # handler_cancellation: a client that hangs up does not cancel its handler mid-write (as
        # under `web.run_app`, whose default it is; aiohttp's test server would cancel), so the
        # tests run what `broker serve` runs.
        handler_args={
            "lingering_time": min(settings.server.body_timeout_seconds, 10.0),
            "handler_cancellation": False,
        },
    )
    app[settings_key] = settings
    app[clock_key] = clock
    app[sleep_key] = sleep
    app[metrics_key] = Metrics()
    app[csp_key] = content_security_policy(
        settings.billing.checkout_origins if settings.billing else []
    )
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("broker.manage", "templates"),
                jinja2.PackageLoader("broker.ops", "templates"),
            ]
        ),
        autoescape=jinja2.select_autoescape(default=True),
    )
    environment.globals["status_labels"] = STATUS_LABELS
    environment.globals["pause_effects"] = PAUSE_EFFECTS
    environment.globals["broker_version"] = __version__
    app[session_codec_key] = SessionCodec(
        settings.landing.session_keys() or [secrets.token_bytes(32)],
        max_age_seconds=settings.landing.session_max_age_seconds,
        clock=clock,
    )
    app.cleanup_ctx.extend(
        [
            store_context,
            refusals_context,
            http_session_context,
            billing_context,
            delivery_worker_context,
            reconcile_context,
            retention_context,
        ]
    )
    app.on_startup.append(log_verification_mode)
    app.on_shutdown.append(stop_claiming)
    app.router.add_post(WEBHOOK_PATH, receive_billing_webhook)
    if settings.landing.verification is LandingVerification.ZOHO:
        app.cleanup_ctx.append(oidc_pages.oidc_context)
        app.router.add_get(oidc_pages.CALLBACK_PATH, oidc_pages.callback)
        manage_handler = oidc_pages.manage
    else:
        manage_handler = manage
    app.router.add_get("/manage", manage_handler)
    app.router.add_post("/manage", manage_handler)
    app.router.add_get("/manage/return", checkout_return)
    for path, show, act in (
        ("/manage/subscribe", subscribe_form, subscribe),
        ("/manage/change", change_form, change),
        ("/manage/cancel", cancel_form, cancel),
        ("/manage/pause", pause_form, pause),
    ):
        app.router.add_get(path, show)
        app.router.add_post(path, act)
    app.router.add_get("/manage/change/confirm", change_confirm_form)
    app.router.add_get(duplicate_cancel.PATH, duplicate_cancel.cancel_duplicate_form)
    app.router.add_post(duplicate_cancel.PATH, duplicate_cancel.cancel_duplicate)
    app.router.add_post("/manage/reactivate", reactivate)
    app.router.add_post("/manage/resume", resume)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    setup_ops(app, settings, clock)
    app.router.add_static("/static", STATIC_DIR, name="static")
    return app
