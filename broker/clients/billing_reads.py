"""Reconciliation's reads of Zoho Billing: the event log, the subscription list, a customer.

They go through ``BillingClient.request``, so they share its retries and its 429 pause: while
billing has asked us to wait, a run stops at once (``BillingRateLimited``) rather than stretch a
busy minute. Lists are read page by page (``billing_pages``: ``has_more_page`` where given, else
while pages come back full) up to ``reconcile.max_pages``. The events list documents no filter:
what to send, if anything, is the caller's (settings) choice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from broker.clients.billing import BillingClient
from broker.clients.billing_pages import ListPage, list_pages
from broker.config import ReconcileSettings
from broker.core.billing_events import BillingCustomer, BillingSubscription
from broker.core.ids import path_segment
from broker.errors import BillingAnswerInvalid


class BillingReads:
    def __init__(self, client: BillingClient, settings: ReconcileSettings) -> None:
        self._client = client
        self._settings = settings

    def event_pages(self, params: dict[str, str]) -> AsyncIterator[ListPage]:
        """The event log's pages, as billing lists them (items: id, type and time only)."""
        return self._pages("/events", "events", params)

    async def event(self, event_id: str) -> dict[str, object]:
        """One event in full: ``GET /events/{id}``, whose ``payload`` is the webhook body. Kept
        as billing sent it: its bytes are the stored raw body (``core.reconcile.event_body``),
        and ``core.reconcile.listed_event`` reads it."""
        body = await self._client.request("GET", f"/events/{path_segment('event', event_id)}")
        value = body.get("event")
        return value if isinstance(value, dict) else {}

    def subscription_pages(self) -> AsyncIterator[ListPage]:
        """Every subscription as the list shows it (no plan object: read one in full to use it)."""
        params = {"filter_by": self._settings.subscriptions_filter}
        return self._pages("/subscriptions", "subscriptions", params)

    async def subscription(self, subscription_id: str) -> BillingSubscription:
        subscription = await self._client.get_subscription(subscription_id)
        if subscription is None:
            raise BillingAnswerInvalid(
                f"Zoho Billing's answer for subscription {subscription_id} carried none"
            )
        return subscription

    async def customer(self, customer_id: str) -> BillingCustomer | None:
        """The customer; None when the answer carried none."""
        return await self._client.get_customer(customer_id)

    def _pages(self, path: str, resource: str, params: dict[str, str]) -> AsyncIterator[ListPage]:
        return list_pages(
            self._client.request,
            path,
            resource,
            params,
            per_page=self._settings.per_page,
            max_pages=self._settings.max_pages,
        )
