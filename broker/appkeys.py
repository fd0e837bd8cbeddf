"""Every typed key the application carries, in one place, so wiring is explicit and greppable."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from aiohttp import web

from .config import Settings
from .delivery import DeliveryWorker
from .metrics import Metrics
from .platform_client import PlatformClient
from .store import Store

settings_key = web.AppKey("settings", Settings)
clock_key: web.AppKey[Callable[[], float]] = web.AppKey("clock")
store_key = web.AppKey("store", Store)
metrics_key = web.AppKey("metrics", Metrics)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
platform_client_key = web.AppKey("platform_client", PlatformClient)
worker_key = web.AppKey("delivery_worker", DeliveryWorker)

request_id_key = web.RequestKey("request_id", str)
