"""What the simulated Zoho Billing does to its records: checkouts, plan changes, cancellation,
reactivation, pause and resume, dunning, and the calendar passing. ``BillingState`` is the one
object the HTTP layer talks to; the work is in ``ledger`` (records and events), ``orders``
(validation), ``hosted`` (checkout pages), ``subscriptions`` (changes and charges) and ``days``.

Pure: no I/O and no asyncio. Refusals are ``ApiError``s; events go to the ``on_event`` callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import date
from decimal import Decimal

from . import subscriptions as changes
from .catalog import Addon, Catalog, Plan
from .clock import ONE_DAY, Calendar
from .days import pass_day
from .errors import invalid, not_allowed
from .hosted import HostedPages, PageClosed
from .ids import IdStyle
from .inputs import (
    AddonInput,
    CustomerInput,
    CustomerUpdateInput,
    CustomFieldInput,
    NewSubscriptionPageInput,
    PauseInput,
    SubscriptionChangeInput,
    UpdateSubscriptionPageInput,
)
from .ledger import Ledger
from .money import MoneyEventType, MoneyIds, emit_money_event
from .orders import Orders
from .records import Customer, Event, HostedPage, Subscription
from .subscriptions import DunningPolicy, Proration, downgrade_credit, pause_credit

__all__ = ["BillingState", "PageClosed", "pause_credit"]


class BillingState:
    def __init__(
        self,
        catalog: Catalog,
        today: date,
        *,
        hosted_page_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[Event], None] | None = None,
        customer_fields: Collection[str] | None = None,
        dunning: DunningPolicy | None = None,
        free_plan_code: str | None = None,
    ) -> None:
        self.ledger = Ledger(catalog, today, clock=clock, on_event=on_event)
        self.money_ids = MoneyIds()
        self.orders = Orders(catalog, customer_fields)
        self.pages = HostedPages(self.ledger, self.orders, hosted_page_ttl)
        self.dunning = dunning or DunningPolicy()
        self.proration = Proration.ZOHO
        free = [p for p in catalog.plans.values() if p.recurring_price == 0]
        self.free_plan_code = free_plan_code or (free[0].plan_code if free else None)

    # -- records -----------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self.ledger.catalog

    @property
    def calendar(self) -> Calendar:
        return self.ledger.calendar

    @property
    def clock(self) -> Callable[[], float]:
        return self.ledger.clock

    @property
    def customers(self) -> dict[str, Customer]:
        return self.ledger.customers

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self.ledger.subscriptions

    @property
    def hosted_pages(self) -> dict[str, HostedPage]:
        return self.ledger.hosted_pages

    @property
    def events(self) -> list[Event]:
        return self.ledger.events

    def set_id_style(self, style: IdStyle) -> None:
        self.ledger.id_style = style

    def subscription(self, subscription_id: str) -> Subscription:
        return self.ledger.subscription(subscription_id)

    def customer(self, customer_id: str) -> Customer:
        return self.ledger.customer(customer_id)

    def hosted_page(self, hostedpage_id: str) -> HostedPage:
        return self.ledger.hosted_page(hostedpage_id)

    def update_customer(self, customer_id: str, request: CustomerUpdateInput) -> Customer:
        """PUT /customers/{id}: what is given replaces what was; custom fields by label."""
        customer = self.ledger.customer(customer_id)
        customer.display_name, customer.email = request.display_name, request.email
        for name in ("first_name", "last_name", "company_name"):
            if (value := getattr(request, name)) is not None:
                setattr(customer, name, value)
        if request.custom_fields is not None:
            customer.custom_fields = self.orders.customer_custom_fields(
                customer.custom_fields, request.custom_fields
            )
        return customer

    def event(self, event_id: str) -> Event:
        return self.ledger.event(event_id)

    def plan(self, plan_code: str) -> Plan:
        return self.orders.plan(plan_code)

    def addon(self, addon_code: str) -> Addon:
        return self.orders.addon(addon_code)

    # -- hosted pages ------------------------------------------------------------------------

    def open_new_subscription_page(
        self, request: NewSubscriptionPageInput, origin: str
    ) -> HostedPage:
        return self.pages.open_new_subscription(request, origin)

    def open_update_page(self, request: UpdateSubscriptionPageInput, origin: str) -> HostedPage:
        return self.pages.open_update(request, origin)

    def open_page(self, hostedpage_id: str) -> HostedPage:
        return self.pages.open_page(hostedpage_id)

    def view_page(self, hostedpage_id: str) -> HostedPage:
        return self.pages.view(hostedpage_id)

    def read_page(self, hostedpage_id: str) -> HostedPage:
        return self.pages.read(hostedpage_id)

    def pay(self, hostedpage_id: str) -> HostedPage:
        return self.pages.pay(hostedpage_id)

    def fail(self, hostedpage_id: str) -> HostedPage:
        return self.pages.fail(hostedpage_id)

    def cancel_page(self, hostedpage_id: str) -> HostedPage:
        return self.pages.cancel(hostedpage_id)

    def expire_hosted_pages(self) -> None:
        self.pages.expire_all()

    # -- direct API actions ------------------------------------------------------------------

    def change(self, subscription_id: str, request: SubscriptionChangeInput) -> Subscription:
        """PUT /subscriptions/{id}. end_of_term is recorded but the change applies now."""
        sub = self.subscription(subscription_id)
        plan, quantity, addons = self.orders.resolve_change(sub, request.plan, request.addons)
        old_amount, old_months, status = sub.amount, sub.plan.months, sub.status
        changes.apply_change(
            self.ledger, sub, plan, quantity, addons, end_of_term=request.end_of_term
        )
        if status in ("live", "non_renewing") and plan.months == old_months:
            # A prorated downgrade's unused amount comes back as a credit note (Zoho's help,
            # "Proration", scenario 1), reported by the documented creditnote_added event.
            credit = downgrade_credit(old_amount, sub, self.calendar.today, self.proration)
            if credit > 0:
                emit_money_event(
                    self.ledger, self.money_ids, sub, MoneyEventType.CREDIT_NOTE, credit
                )
        return sub

    def cancel(self, subscription_id: str, *, at_term_end: bool) -> Subscription:
        sub = self.subscription(subscription_id)
        if sub.status in ("cancelled", "expired", "cancelled_from_dunning"):
            raise not_allowed("The subscription has already been cancelled.")
        if at_term_end:
            if sub.status == "non_renewing":
                raise not_allowed("The subscription is already scheduled for cancellation.")
            sub.status = "non_renewing"
            self.ledger.emit_change("subscription_cancellation_scheduled", sub)
        else:
            sub.status, sub.cancelled_at = "cancelled", self.calendar.today
            self.ledger.emit_change("subscription_cancelled", sub)
        return sub

    def reactivate(self, subscription_id: str) -> Subscription:
        sub = self.subscription(subscription_id)
        today = self.calendar.today
        if sub.status == "non_renewing":
            sub.status = "live"
            self.ledger.emit_change("subscription_scheduled_cancellation_removed", sub)
        elif sub.status == "cancelled" and today <= sub.term_end:
            sub.status, sub.cancelled_at = "live", None
            self.ledger.emit_change("subscription_reactivated", sub)
        elif sub.status == "cancelled":
            raise not_allowed(
                "The subscription cannot be reactivated: its term ended on "
                f"{sub.term_end.isoformat()}."
            )
        else:
            raise not_allowed(f"A {sub.status} subscription cannot be reactivated.")
        return sub

    def pause(self, subscription_id: str, request: PauseInput) -> Subscription:
        """Pause today, or schedule a pause that starts on ``pause_date`` (no event until then)."""
        sub = self.subscription(subscription_id)
        today = self.calendar.today
        if sub.status != "live":
            raise not_allowed(f"Only live subscriptions can be paused; this one is {sub.status}.")
        pause_date = request.pause_date or today
        if pause_date < today:
            raise invalid("The pause_date cannot be in the past.")
        if request.resume_date is not None and request.resume_date <= pause_date:
            raise invalid("The resume_date must be after the pause_date.")
        if pause_date > today:
            sub.pause_scheduled, sub.scheduled_resume = pause_date, request.resume_date
            return sub
        changes.pause(self.ledger, sub, pause_date, request.resume_date)
        return sub

    def resume(self, subscription_id: str) -> Subscription:
        sub = self.subscription(subscription_id)
        if sub.status != "paused":
            raise not_allowed(f"Only paused subscriptions resume; this one is {sub.status}.")
        changes.resume(self.ledger, sub, self.calendar.today)
        return sub

    # -- the calendar and what tests script ---------------------------------------------------

    def set_today(self, day: date) -> None:
        """Move the calendar; each day passed forwards runs what falls due on it, in order."""
        free = self.plan(self.free_plan_code) if self.free_plan_code else None
        while self.calendar.today < day:
            self.calendar.today += ONE_DAY
            for sub in list(self.subscriptions.values()):
                pass_day(self.ledger, sub, self.calendar.today, self.dunning, free)
        self.calendar.today = day

    def money_event(
        self, subscription_id: str, event_type: MoneyEventType, amount: Decimal | None = None
    ) -> Subscription:
        """Money leaves the subscription's current term (a refund, chargeback, void or credit
        note); the subscription itself does not change."""
        sub = self.subscription(subscription_id)
        if amount is not None and not Decimal(0) < amount <= sub.amount:
            raise invalid(f"The amount must be more than 0 and at most {sub.amount}.")
        emit_money_event(self.ledger, self.money_ids, sub, event_type, amount)
        return sub

    def decline_payments(self, subscription_id: str, declines: bool = True) -> Subscription:
        """From now on every charge of this subscription fails (or, with False, succeeds)."""
        sub = self.subscription(subscription_id)
        sub.card_declines = declines
        return sub

    def backdate(
        self,
        subscription_id: str,
        day: date,
        *,
        status: str | None = None,
        plan_code: str | None = None,
        quantity: int | None = None,
    ) -> Subscription:
        """A change recorded as made on a past ``day``: Zoho emits no event for it."""
        sub = self.subscription(subscription_id)
        if day >= self.calendar.today:
            raise invalid("A backdated change needs a day before today.")
        if plan_code is not None:
            sub.plan = self.plan(plan_code)
        if quantity is not None:
            sub.quantity = quantity
        if status is not None:
            sub.status = status
        sub.updated_time = Calendar.backdated(day)
        return sub

    def subscribe(
        self,
        plan_code: str,
        *,
        quantity: int = 1,
        addons: dict[str, int] | None = None,
        customer_id: str | None = None,
        customer: CustomerInput | None = None,
        customer_fields: list[CustomFieldInput] | None = None,
        billing_cycles: int = -1,
    ) -> Subscription:
        """A subscription as if its checkout had been paid, events and all."""
        plan = self.plan(plan_code)
        given = [AddonInput(addon_code=code, quantity=n) for code, n in (addons or {}).items()]
        lines = self.orders.addon_lines(given, plan)
        if customer_id is not None:
            buyer = self.customer(customer_id)
        else:
            new = self.orders.new_customer(customer or CustomerInput(display_name="Org"))
            buyer = self.ledger.add_customer(new)
        if customer_fields:
            buyer.custom_fields = self.orders.customer_custom_fields(
                buyer.custom_fields, customer_fields
            )
        sub = self.ledger.create(buyer, plan, quantity, lines)
        sub.billing_cycles = billing_cycles
        return sub
