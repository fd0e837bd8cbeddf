"""The typed keys every part of the application shares, so wiring is explicit and greppable.

Keys only the page or only the console reads live beside them (``manage.appkeys``,
``ops.appkeys``): this module sits below both and imports neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from broker.clients.billing import BillingClient
from broker.clients.billing_quota import CallBudget, SharedReads
from broker.clients.catalog import CatalogCache
from broker.clients.platform import PlatformClient
from broker.config import Settings
from broker.delivery.customer_index import CustomerSweep
from broker.delivery.daily_budget import DailyBudget
from broker.delivery.reconcile import ReconcileDeps
from broker.delivery.worker import DeliveryWorker
from broker.metrics import Metrics
from broker.store.engine.backend import StoreBackend
from broker.web.refused import RefusalTally

settings_key = web.AppKey("settings", Settings)
clock_key: web.AppKey[Callable[[], float]] = web.AppKey("clock")
# How the delivery worker waits for the clock above (asyncio.sleep; tests move time by hand).
sleep_key: web.AppKey[Callable[[float], Awaitable[None]]] = web.AppKey("sleep")
store_key = web.AppKey("store", StoreBackend)
metrics_key = web.AppKey("metrics", Metrics)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
platform_client_key = web.AppKey("platform_client", PlatformClient)
worker_key = web.AppKey("delivery_worker", DeliveryWorker)
# Present only when [billing] is configured; the page then offers checkout and changes.
billing_client_key = web.AppKey("billing_client", BillingClient)
catalog_key = web.AppKey("catalog", CatalogCache)
# With billing: each org's billing reads, shared and kept briefly; each session's call budget.
org_reads_key: web.AppKey[SharedReads[tuple[str, ...]]] = web.AppKey("org_reads")
call_budget_key = web.AppKey("call_budget", CallBudget)
# The day's billing call budget, shared through the store by every replica.
daily_budget_key = web.AppKey("daily_budget", DailyBudget)
customer_sweep_key = web.AppKey("customer_sweep", CustomerSweep)
# With billing: what a reconciliation run needs (the console's button calls run_reconciliation).
reconcile_key = web.AppKey("reconcile", ReconcileDeps)

# Refused webhook requests, counted here and written to the store by a timer once a minute.
refusals_key = web.AppKey("webhook_refusals", RefusalTally)

request_id_key = web.RequestKey("request_id", str)
csp_key = web.AppKey("content_security_policy", str)
