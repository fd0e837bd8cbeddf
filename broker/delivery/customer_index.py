"""The customer index sweep: which billing customer belongs to which org, read from billing when
a webhook never said so (the demo's second org: its webhooks were dropped).

``GET /customers`` [doc] lists every customer but documents no custom fields on a list item, so
each customer the index does not know yet is read in full (``GET /customers/{id}`` [doc], its
``custom_fields``) and kept by ``cf_zgid``. One sweep at a time; at most one per
``billing.customer_sweep_seconds``; at most ``billing.customer_sweep_max_reads`` full reads each,
so a sweep's calls are bounded (list pages + reads). A failed sweep leaves the index as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import structlog

from broker.clients.billing import BillingClient
from broker.config import BillingSettings
from broker.core.org_billing import customer_record
from broker.store.engine.backend import StoreBackend
from broker.store.org_index import index_customer, indexed_customer_ids

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepResult:
    listed: int
    read: int
    indexed: int
    complete: bool  # every customer billing listed is now known, or was read


class CustomerSweep:
    def __init__(
        self,
        store: StoreBackend,
        client: BillingClient,
        settings: BillingSettings,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._client = client
        self._settings = settings
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_complete: float | None = None

    def due(self) -> bool:
        """True when no complete sweep ran within ``customer_sweep_seconds``."""
        last = self._last_complete
        return last is None or self._clock() - last >= self._settings.customer_sweep_seconds

    async def sweep_if_due(self) -> SweepResult | None:
        """Run one sweep unless one completed recently; concurrent callers share it. Billing
        errors propagate (the caller fails closed)."""
        async with self._lock:
            if not self.due():
                return None
            result = await self._sweep()
            if result.complete:
                self._last_complete = self._clock()
            return result

    async def _sweep(self) -> SweepResult:
        listed = await self._client.list_customers()
        known = await self._store.read(indexed_customer_ids)
        unknown = [
            item.customer_id
            for item in listed
            if item.customer_id and item.customer_id not in known
        ]
        budget = self._settings.customer_sweep_max_reads
        read = indexed = 0
        for customer_id in unknown[:budget]:
            document = await self._client.get_customer(customer_id)
            read += 1
            record = customer_record(document, self._clock())
            if record is None:
                continue
            await self._store.write(partial(index_customer, record=record))
            indexed += record.zgid is not None
        result = SweepResult(len(listed), read, indexed, complete=len(unknown) <= budget)
        log.info(
            "billing.customer_sweep",
            listed=result.listed,
            read=result.read,
            indexed=result.indexed,
            complete=result.complete,
        )
        return result
