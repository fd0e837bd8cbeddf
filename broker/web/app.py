"""The application factory: settings in, a fully wired ``web.Application`` out.

Resources (the store, the HTTP client session, the delivery worker) are ``cleanup_ctx``
generators, so they start in order when the app starts and stop in reverse when it stops: the
worker finishes its calls before the session closes, and the session before the store. The
worker runs in this process: a child process measured no clear gain (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from broker import __version__
from broker.clients.billing import BillingClient
from broker.clients.billing_quota import CallBudget, SharedReads
from broker.clients.billing_reads import BillingReads
from broker.clients.catalog import CatalogCache
from broker.clients.platform import PlatformClient
from broker.config import LandingVerification, Settings
from broker.core.billing_status import BillingStatus
from broker.core.pause_terms import PAUSE_EFFECTS
from broker.delivery.customer_index import CustomerSweep
from broker.delivery.daily_budget import DailyBudget
from broker.delivery.reconcile import ReconcileDeps, run_on_schedule
from broker.delivery.restore import reconcile_restored, supersede_if_restored
from broker.delivery.retention import Pruner, prune_on_schedule
from broker.delivery.worker import DeliveryWorker
from broker.manage import duplicate_cancel, oidc_pages
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
from broker.redaction import Redactor
from broker.store.opening import open_store
from broker.web.appkeys import (
    billing_client_key,
    call_budget_key,
    catalog_key,
    clock_key,
    csp_key,
    customer_sweep_key,
    daily_budget_key,
    http_session_key,
    metrics_key,
    org_reads_key,
    platform_client_key,
    reconcile_key,
    refusals_key,
    session_codec_key,
    settings_key,
    sleep_key,
    store_key,
    worker_key,
)
from broker.web.health import healthz, metrics, readyz
from broker.web.middlewares import (
    billing_priority,
    content_security_policy,
    error_answers,
    request_context,
    security_headers,
)
from broker.web.refused import RefusalTally
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


async def store_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key].store
    store = open_store(settings)
    await store.open()
    app[store_key] = store
    yield
    await store.close()


async def refusals_context(app: web.Application) -> AsyncIterator[None]:
    """Refused webhooks counted in memory, written by a timer on the app's sleep; what is left
    is written before the store closes."""
    tally = RefusalTally(app[store_key], app[clock_key])
    app[refusals_key] = tally
    timer = asyncio.create_task(tally.run(app[sleep_key]))
    yield
    timer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await timer
    await tally.close()


async def http_session_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.delivery.concurrency),
        timeout=aiohttp.ClientTimeout(total=settings.platform.request_timeout_seconds),
        raise_for_status=False,
    )
    app[http_session_key] = session
    app[platform_client_key] = PlatformClient(
        session, settings.platform, redactor=Redactor(settings.secrets())
    )
    yield
    await session.close()


async def billing_context(app: web.Application) -> AsyncIterator[None]:
    """The Zoho Billing client and plan catalog, when billing is configured."""
    settings = app[settings_key]
    if settings.billing is None:
        yield
        return
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.billing.request_timeout_seconds)
    )
    budget = DailyBudget(app[store_key], settings.billing, app[clock_key], app[sleep_key])
    app[daily_budget_key] = budget
    client = BillingClient(
        session, settings.billing, clock=app[clock_key], metrics=app[metrics_key], gate=budget
    )
    app[billing_client_key] = client
    app[catalog_key] = CatalogCache(
        client,
        app_domain=settings.platform.app_domain,
        plan_settings=settings.plans,
        ttl_seconds=settings.landing.catalog_ttl_seconds,
    )
    app[org_reads_key] = SharedReads(
        ttl_seconds=settings.billing.read_cache_seconds, clock=app[clock_key]
    )
    app[customer_sweep_key] = CustomerSweep(
        app[store_key], client, settings.billing, app[clock_key]
    )
    app[call_budget_key] = CallBudget(
        burst=settings.billing.session_call_burst,
        per_minute=settings.billing.session_calls_per_minute,
        clock=app[clock_key],
    )
    app[reconcile_key] = ReconcileDeps(
        app[store_key],
        BillingReads(client, settings.reconcile),
        settings,
        app[metrics_key],
        app[clock_key],
    )
    yield
    await session.close()


async def reconcile_context(app: web.Application) -> AsyncIterator[None]:
    """Scheduled reconciliation, when billing is configured and the interval is not 0."""
    interval = app[settings_key].reconcile.interval_seconds
    if reconcile_key not in app or interval <= 0:
        yield
        return
    schedule = run_on_schedule(app[reconcile_key], interval=interval, sleep=app[sleep_key])
    task = asyncio.create_task(schedule)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    """Scheduled pruning (docs/operations.md: Retention), unless retention.interval_seconds is 0."""
    settings = app[settings_key].retention
    if settings.interval_seconds <= 0:
        yield
        return
    pruner = Pruner(app[store_key], settings, app[clock_key])
    schedule = prune_on_schedule(pruner, interval=settings.interval_seconds, sleep=app[sleep_key])
    task = asyncio.create_task(schedule)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def stop_claiming(app: web.Application) -> None:
    """Shutdown has begun: deliveries on the wire finish, nothing new is claimed."""
    if worker_key in app:
        app[worker_key].begin_stop()


async def restore_then_start(
    app: web.Application, worker: DeliveryWorker
) -> asyncio.Task[None] | None:
    """Start the worker; on a restored store, only after billing was read again (a task)."""
    check = await supersede_if_restored(app[store_key], now=app[clock_key]())
    if not check.pending:
        worker.start()
        return None
    settings = app[settings_key]

    async def reconcile_then_start() -> None:
        reconciled = await reconcile_restored(
            app.get(reconcile_key),
            app[store_key],
            settings,
            clock=app[clock_key],
            sleep=app[sleep_key],
            retry_seconds=settings.reconcile.restore_retry_seconds,
        )
        if reconciled:
            worker.start()

    return asyncio.create_task(reconcile_then_start(), name="restore-reconcile")


async def delivery_worker_context(app: web.Application) -> AsyncIterator[None]:
    worker = DeliveryWorker(
        app[store_key],
        app[platform_client_key],
        app[settings_key],
        app[metrics_key],
        clock=app[clock_key],
        sleep=app[sleep_key],
    )
    app[worker_key] = worker
    # Another replica queued a delivery: claim it now rather than at the next poll.
    app[store_key].on_wakeup(worker.wake)
    restore = await restore_then_start(app, worker)
    yield
    if restore is not None:
        restore.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await restore
    await worker.stop(grace_seconds=app[settings_key].platform.request_timeout_seconds + 1)
