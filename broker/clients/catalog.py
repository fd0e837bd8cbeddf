"""The plan catalog read through the billing client, at most once per TTL.

``CatalogCache`` serves the last good catalog while billing is away; building it from billing's
lists is ``broker.core.catalog``'s pure work.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from broker.clients.billing import BillingClient
from broker.config import PlansSettings
from broker.core.catalog import Catalog, build_catalog
from broker.errors import BillingError

log = structlog.get_logger(__name__)


class CatalogCache:
    def __init__(
        self,
        client: BillingClient,
        *,
        app_domain: str,
        plan_settings: PlansSettings,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._app_domain = app_domain
        self._plan_settings = plan_settings
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: tuple[float, Catalog] | None = None

    async def get(self) -> Catalog:
        if self._cached is not None and self._clock() - self._cached[0] < self._ttl:
            return self._cached[1]
        try:
            plans = await self._client.list_plans()
            addons = await self._client.list_addons()
        except BillingError:
            if self._cached is None:
                raise
            # Plans change rarely: an older list beats no form while billing is away.
            log.warning("catalog.stale_served", age_seconds=round(self._clock() - self._cached[0]))
            return self._cached[1]
        catalog = build_catalog(
            plans, addons, app_domain=self._app_domain, plan_settings=self._plan_settings
        )
        self._cached = (self._clock(), catalog)
        return catalog
