"""Shared fixtures: the real broker app, the real Developer Console simulator, on port 0."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.app import create_app
from broker.config import Settings
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import store_key
from tests.support.basics import (
    APP_DOMAIN,
    LINK_SECRET,
    STORAGE_MONTHLY,
    STORAGE_YEARLY,
    ZAPIKEY,
    body_of,
)

BrokerFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]

# The Manage Subscription page tests share their fixtures (make_world, world, owner, live);
# the store tests take a PostgreSQL server from support.postgres (postgres_url, store_url).
pytest_plugins = [
    "tests.support.pages",
    "tests.support.postgres",
    "tests.support.replicas",
    "tests.support.zoho",
]


@pytest.fixture
def simulator() -> PlatformSimulator:
    return PlatformSimulator(ZAPIKEY)


@pytest.fixture
async def platform_server(
    simulator: PlatformSimulator, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> TestServer:
    return await aiohttp_server(simulator.app())


def fast_settings(
    tmp_path: Path,
    platform_url: str,
    *,
    store: dict[str, Any] | None = None,
    **sections: dict[str, Any],
) -> Settings:
    """Settings for tests: real defaults, but retries in milliseconds instead of seconds.
    ``store`` is the store section (default: the SQLite file in ``tmp_path``)."""
    values: dict[str, Any] = {
        "platform": {
            "app_domain": APP_DOMAIN,
            "zapikey": ZAPIKEY,
            "base_url": platform_url,
            "request_timeout_seconds": 2.0,
        },
        "store": store or {"path": tmp_path / "broker.db"},
        "plans": {"storage_addon_monthly": STORAGE_MONTHLY, "storage_addon_yearly": STORAGE_YEARLY},
        "delivery": {
            "initial_backoff_seconds": 0.01,
            "max_backoff_seconds": 0.05,
            "jitter_seconds": 0.0,
            "poll_interval_seconds": 0.05,
            "lease_seconds": 5.0,
        },
        # The secure default; tests of "none" or of no verification opt out explicitly.
        "landing": {"link_secret": LINK_SECRET},
        # No scheduled pruning: its hourly nap would sit among those the timing tests watch.
        # Tests of pruning opt in.
        "retention": {"interval_seconds": 0},
    }
    for section, overrides in sections.items():
        values[section] = {**values.get(section, {}), **overrides}
    return Settings(**values)


@pytest.fixture
def broker_store(tmp_path: Path) -> dict[str, Any]:
    """The store section of the brokers a test starts: the SQLite file beside the test. A
    module whose tests must hold on both backends overrides it with ``store_section(store_url)``
    (tests/support/postgres.py)."""
    return {"path": tmp_path / "broker.db"}


@pytest.fixture
def make_broker(
    tmp_path: Path,
    broker_store: dict[str, Any],
    platform_server: TestServer,
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> BrokerFactory:
    """Start the real broker app against the simulator; sections override settings, and
    ``clock`` (default the wall clock) is the broker's and its worker's, ``sleep`` their waits."""

    async def start(
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **sections: dict[str, Any],
    ) -> TestClient[web.Request, web.Application]:
        store = sections.pop("store", broker_store)  # a test's own store section wins whole
        settings = fast_settings(
            tmp_path, str(platform_server.make_url("")).rstrip("/"), store=store, **sections
        )
        return await aiohttp_client(create_app(settings, clock=clock, sleep=sleep))

    return start


@pytest.fixture
async def broker(make_broker: BrokerFactory) -> TestClient[web.Request, web.Application]:
    return await make_broker()


async def post_event(
    client: TestClient[web.Request, web.Application],
    payload: dict[str, Any] | bytes,
    *,
    key: str | None = ZAPIKEY,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a webhook; returns the response (body read)."""
    all_headers = {"Content-Type": "application/json"}
    if key is not None:
        all_headers["zapikey"] = key
    all_headers.update(headers or {})
    data = payload if isinstance(payload, bytes) else body_of(payload)
    response = await client.post("/webhooks/billing", data=data, headers=all_headers)
    await response.read()
    return response


async def db_rows(
    client: TestClient[web.Request, web.Application], sql: str, params: Any = ()
) -> list[dict[str, Any]]:
    """Read the broker's own database through its store (what an operator would see)."""
    store = client.app[store_key]
    return await store.read(lambda db: list(db.select_all(sql, params)))
