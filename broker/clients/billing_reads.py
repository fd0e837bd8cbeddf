"""Reconciliation's reads of Zoho Billing: the event log, the subscription list, a customer.

They go through ``BillingClient.request``, so they share its retries and its 429 pause: while
billing has asked us to wait, a run stops at once (``BillingRateLimited``) rather than stretch a
busy minute. Lists are read page by page (``page``, ``per_page``, ``page_context``, documented)
up to a hard stop; the event filter names are settings because they are [unsure].
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from broker.clients.billing import BillingClient
from broker.config import ReconcileSettings
from broker.core.ids import path_segment

PER_PAGE = 200  # Zoho's largest page


class BillingReads:
    def __init__(self, client: BillingClient, settings: ReconcileSettings) -> None:
        self._client = client
        self._settings = settings

    def events_since(self, day: date) -> AsyncIterator[dict[str, Any]]:
        """Every logged event from ``day`` on, oldest first."""
        params = {
            self._settings.events_since_param: day.isoformat(),
            self._settings.events_order_param: self._settings.events_oldest_first,
        }
        return self._pages("/events", "events", params)

    def subscriptions(self) -> AsyncIterator[dict[str, Any]]:
        """Every subscription as the list shows it (no plan object: read one in full to use it)."""
        return self._pages(
            "/subscriptions", "subscriptions", {"filter_by": self._settings.subscriptions_filter}
        )

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        return await self._client.get_subscription(subscription_id)

    async def customer(self, customer_id: str) -> dict[str, Any]:
        body = await self._client.request(
            "GET", f"/customers/{path_segment('customer', customer_id)}"
        )
        value = body.get("customer")
        return value if isinstance(value, dict) else {}

    async def _pages(
        self, path: str, resource: str, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        for page in range(1, self._settings.max_pages + 1):
            body = await self._client.request(
                "GET", path, params={**params, "page": str(page), "per_page": str(PER_PAGE)}
            )
            for item in body.get(resource, []):
                if isinstance(item, dict):
                    yield item
            context = body.get("page_context")
            if not (isinstance(context, dict) and context.get("has_more_page")):
                return
