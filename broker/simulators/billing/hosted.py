"""Hosted checkout pages: opened by the API, paid or failed by the buyer's browser, expiring
after their lifetime. Paying applies exactly the order the page was opened with. Pure.
"""

from __future__ import annotations

from .clock import Calendar
from .errors import ApiError, does_not_exist
from .inputs import NewSubscriptionPageInput, UpdateSubscriptionPageInput
from .ledger import Ledger
from .orders import Orders, require_changeable
from .records import HostedPage, Order, PageAction
from .subscriptions import apply_change


class PageClosed(Exception):
    """The hosted page cannot be paid or failed any more (expired or already used)."""


class HostedPages:
    def __init__(self, ledger: Ledger, orders: Orders, ttl: float) -> None:
        self._ledger = ledger
        self._orders = orders
        self.ttl = ttl
        # Zoho lets a vendor serve hosted pages on its own domain; page URLs then name it.
        self.mapped_origin: str | None = None

    def open_new_subscription(self, request: NewSubscriptionPageInput, origin: str) -> HostedPage:
        plan = self._orders.plan(request.plan.plan_code)
        addons = self._orders.addon_lines(request.addons, plan)
        order = Order(plan, request.plan.quantity or 1, addons)
        if request.customer_id is not None:
            order.customer_id = self._ledger.customer(request.customer_id).customer_id
        elif request.customer is not None:
            order.new_customer = self._orders.new_customer(request.customer)
        order.custom_fields = [self._orders.custom_field(item) for item in request.custom_fields]
        return self._open("new_subscription", order, request.redirect_url, origin)

    def open_update(self, request: UpdateSubscriptionPageInput, origin: str) -> HostedPage:
        sub = self._ledger.subscription(request.subscription_id)
        plan, quantity, addons = self._orders.resolve_change(sub, request.plan, request.addons)
        order = Order(plan, quantity, addons, subscription_id=sub.subscription_id)
        return self._open("update_subscription", order, request.redirect_url, origin)

    def _open(
        self, action: PageAction, order: Order, redirect_url: str | None, origin: str
    ) -> HostedPage:
        ledger = self._ledger
        page_id = next(ledger.page_ids)
        created = ledger.calendar.stamp()
        page = HostedPage(
            hostedpage_id=page_id,
            action=action,
            url=f"{origin}/hostedpages/{page_id}/checkout",
            order=order,
            redirect_url=redirect_url,
            created_time=created,
            expiring_time=Calendar.later(created, self.ttl),
            opened_at=ledger.clock(),
            lifetime=self.ttl,
        )
        ledger.hosted_pages[page_id] = page
        return page

    def open_page(self, hostedpage_id: str) -> HostedPage:
        """The page, if a buyer may still pay or fail it; PageClosed says why not."""
        page = self._ledger.hosted_page(hostedpage_id)
        if page.has_expired(self._ledger.clock()):
            raise PageClosed("This checkout link has expired. Start again from the app.")
        if not page.open:
            raise PageClosed("This checkout was already completed.")
        return page

    def view(self, hostedpage_id: str) -> HostedPage:
        """The buyer opened the page: a ``fresh`` page becomes ``read``."""
        page = self.open_page(hostedpage_id)
        page.status = "read"
        return page

    def read(self, hostedpage_id: str) -> HostedPage:
        """The page as the API reads it; an expired unpaid page is gone (404) [unsure]."""
        page = self._ledger.hosted_page(hostedpage_id)
        if page.has_expired(self._ledger.clock()):
            raise does_not_exist("Hosted page")
        return page

    def pay(self, hostedpage_id: str) -> HostedPage:
        page = self.open_page(hostedpage_id)
        order = page.order
        ledger = self._ledger
        if page.action == "new_subscription":
            if order.customer_id is not None:
                customer = ledger.customer(order.customer_id)
            else:
                assert order.new_customer is not None
                customer = ledger.add_customer(order.new_customer)
            sub = ledger.create(
                customer, order.plan, order.quantity, order.addons, order.custom_fields
            )
        else:
            assert order.subscription_id is not None
            sub = ledger.subscription(order.subscription_id)
            try:
                require_changeable(sub)
            except ApiError as exc:  # it changed since the page opened: the checkout fails
                page.status, page.failure_reason = "failed", exc.message
                return page
            apply_change(ledger, sub, order.plan, order.quantity, order.addons)
        page.status = "success"
        page.subscription = sub.to_json()
        return page

    def fail(self, hostedpage_id: str) -> HostedPage:
        page = self.open_page(hostedpage_id)
        page.status, page.failure_reason = "failed", "The payment was declined."
        return page

    def cancel(self, hostedpage_id: str) -> HostedPage:
        """The buyer left the checkout with its Cancel button."""
        page = self.open_page(hostedpage_id)
        page.status = "cancelled"
        return page

    def expire_all(self) -> None:
        for page in self._ledger.hosted_pages.values():
            page.expired = True
