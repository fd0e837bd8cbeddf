"""What the running app holds open, each an ``app.cleanup_ctx`` generator.

They start in the order ``create_app`` lists them and stop in reverse: the worker finishes its
calls before the session closes, and the session before the store. The worker runs in this
process: a child process measured no clear gain (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from broker.clients.billing import BillingClient
from broker.clients.billing_quota import CallBudget, SharedReads
from broker.clients.billing_reads import BillingReads
from broker.clients.catalog import CatalogCache
from broker.clients.platform import PlatformClient
from broker.delivery.customer_index import CustomerSweep
from broker.delivery.daily_budget import DailyBudget
from broker.delivery.reconcile import ReconcileDeps, run_on_schedule
from broker.delivery.restore import reconcile_restored, supersede_if_restored
from broker.delivery.retention import Pruner, prune_on_schedule
from broker.delivery.worker import DeliveryWorker
from broker.redaction import Redactor
from broker.store.opening import open_store
from broker.web.appkeys import (
    billing_client_key,
    call_budget_key,
    catalog_key,
    clock_key,
    customer_sweep_key,
    daily_budget_key,
    http_session_key,
    metrics_key,
    org_reads_key,
    platform_client_key,
    reconcile_key,
    refusals_key,
    settings_key,
    sleep_key,
    store_key,
    worker_key,
)
from broker.web.refused import RefusalTally


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
