"""What the simulated Zoho Billing does to its records: checkouts, plan changes, cancellation,
reactivation, pause and resume, and the calendar passing (renewals, trial ends, scheduled
cancellations, scheduled resumes). Every change stamps ``updated_time`` and emits its event.

Pure: no I/O and no asyncio. Refusals are ``ApiError``s; events go to the ``on_event`` callback.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Collection, Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .catalog import Addon, Catalog, Plan, money
from .errors import CATALOG_ITEM_MISSING, ApiError, does_not_exist, invalid, not_allowed
from .inputs import (
    AddonInput,
    CustomerInput,
    CustomFieldInput,
    NewSubscriptionPageInput,
    PauseInput,
    PlanInput,
    SubscriptionChangeInput,
    UpdateSubscriptionPageInput,
)
from .records import (
    ONE_DAY,
    AddonLine,
    Calendar,
    Customer,
    CustomField,
    Event,
    HostedPage,
    Order,
    PageAction,
    Subscription,
    add_months,
)

CENT = Decimal("0.01")
CHANGEABLE = ("live", "trial", "non_renewing")
# The custom fields the organisation has defined for customers (contracts.md section 3).
KNOWN_CUSTOMER_FIELDS = {"zuid": "2077000000013001", "zgid": "2077000000013002"}


class PageClosed(Exception):
    """The hosted page cannot be paid or failed any more (expired or already used)."""


def pause_credit(
    amount: Decimal, term_start: date, term_end: date, paused_at: date, resumed_on: date
) -> Decimal:
    """Credit for the paid days a pause left unused (contracts.md section 5), to the cent.

    price / days in the billing period x paused days within the paid term. The product is taken
    before the division, so nothing rounds until the final cent (the documented yearly example
    rounds the day rate to $9.58 first; this gives $575.34, not $574.80).
    """
    period_days = (term_end - term_start).days + 1
    paid_days = max(0, (min(resumed_on, term_end + ONE_DAY) - paused_at).days)
    return (amount * paid_days / period_days).quantize(CENT, rounding=ROUND_HALF_UP)


def _term(start: date, months: int) -> tuple[date, date]:
    """(last day of the term, next billing date) for a term starting on ``start``."""
    next_billing = add_months(start, months)
    return next_billing - ONE_DAY, next_billing


def _ids(start: int) -> Iterator[str]:
    return (str(number) for number in itertools.count(start))


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
    ) -> None:
        self.catalog = catalog
        # The customer custom fields the organisation defined (labels); None accepts any. The
        # vendor's documented setup defines only "zuid": a cf_zgid sent then is dropped.
        self.customer_fields = (
            None if customer_fields is None else {label.lower() for label in customer_fields}
        )
        self.calendar = Calendar(today)
        self.hosted_page_ttl = hosted_page_ttl
        self.clock = clock
        self._on_event = on_event or (lambda event: None)
        self.customers: dict[str, Customer] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.hosted_pages: dict[str, HostedPage] = {}
        self.events: list[Event] = []
        self._customer_ids = _ids(2077000000200001)
        self._subscription_ids = _ids(2077000000300001)
        self._page_ids = _ids(2077000000400001)
        self._event_ids = _ids(2077000000500001)
        self._payment_ids = _ids(2077000000600001)
        self._field_ids = _ids(2077000000013101)
        self._numbers = itertools.count(1)
        self._invoice_numbers = itertools.count(1)

    # -- lookups -----------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> Subscription:
        found = self.subscriptions.get(subscription_id)
        if found is None:
            raise does_not_exist("Subscription")
        return found

    def customer(self, customer_id: str) -> Customer:
        found = self.customers.get(customer_id)
        if found is None:
            raise does_not_exist("Customer")
        return found

    def hosted_page(self, hostedpage_id: str) -> HostedPage:
        found = self.hosted_pages.get(hostedpage_id)
        if found is None:
            raise does_not_exist("Hosted page")
        return found

    def event(self, event_id: str) -> Event:
        found = next((event for event in self.events if event.event_id == event_id), None)
        if found is None:
            raise does_not_exist("Event")
        return found

    def plan(self, plan_code: str) -> Plan:
        found = self.catalog.plans.get(plan_code)
        if found is None or found.status != "active":
            raise ApiError(400, CATALOG_ITEM_MISSING, f"The plan {plan_code} does not exist.")
        return found

    def addon(self, addon_code: str) -> Addon:
        found = self.catalog.addons.get(addon_code)
        if found is None or found.status != "active":
            raise ApiError(400, CATALOG_ITEM_MISSING, f"The add-on {addon_code} does not exist.")
        return found

    # -- hosted pages ------------------------------------------------------------------------

    def open_new_subscription_page(
        self, request: NewSubscriptionPageInput, origin: str
    ) -> HostedPage:
        plan = self.plan(request.plan.plan_code)
        addons = self._addon_lines(request.addons, plan)
        order = Order(plan, request.plan.quantity or 1, addons)
        if request.customer_id is not None:
            order.customer_id = self.customer(request.customer_id).customer_id
        elif request.customer is not None:
            order.new_customer = self._new_customer(request.customer)
        order.custom_fields = [self._custom_field(item) for item in request.custom_fields]
        return self._open_page("new_subscription", order, request.redirect_url, origin)

    def open_update_page(self, request: UpdateSubscriptionPageInput, origin: str) -> HostedPage:
        sub = self.subscription(request.subscription_id)
        plan, quantity, addons = self._resolve_change(sub, request.plan, request.addons)
        order = Order(plan, quantity, addons, subscription_id=sub.subscription_id)
        return self._open_page("update_subscription", order, request.redirect_url, origin)

    def _open_page(
        self, action: PageAction, order: Order, redirect_url: str | None, origin: str
    ) -> HostedPage:
        page_id = next(self._page_ids)
        created = self.calendar.stamp()
        page = HostedPage(
            hostedpage_id=page_id,
            action=action,
            url=f"{origin}/hostedpages/{page_id}/checkout",
            order=order,
            redirect_url=redirect_url,
            created_time=created,
            expiring_time=Calendar.later(created, self.hosted_page_ttl),
            opened_at=self.clock(),
            lifetime=self.hosted_page_ttl,
        )
        self.hosted_pages[page_id] = page
        return page

    def open_page(self, hostedpage_id: str) -> HostedPage:
        """The page, if a buyer may still pay or fail it; PageClosed says why not."""
        page = self.hosted_page(hostedpage_id)
        status = page.current_status(self.clock())
        if status == "expired":
            raise PageClosed("This checkout link has expired. Start again from the app.")
        if status != "created":
            raise PageClosed("This checkout was already completed.")
        return page

    def pay(self, hostedpage_id: str) -> HostedPage:
        page = self.open_page(hostedpage_id)
        order = page.order
        if page.action == "new_subscription":
            customer = self._customer_for(order)
            sub = self._create(customer, order.plan, order.quantity, order.addons)
            sub.custom_fields = order.custom_fields
        else:
            assert order.subscription_id is not None
            sub = self.subscription(order.subscription_id)
            try:
                self._require_changeable(sub)
            except ApiError as exc:  # it changed since the page opened: the checkout fails
                page.status, page.failure_reason = "failure", exc.message
                return page
            self._apply_change(sub, order.plan, order.quantity, order.addons)
        page.status = "success"
        page.subscription = sub.to_json()
        return page

    def fail(self, hostedpage_id: str) -> HostedPage:
        page = self.open_page(hostedpage_id)
        page.status, page.failure_reason = "failure", "The payment was declined."
        return page

    def expire_hosted_pages(self) -> None:
        for page in self.hosted_pages.values():
            page.expired = True

    # -- direct API actions ------------------------------------------------------------------

    def change(self, subscription_id: str, request: SubscriptionChangeInput) -> Subscription:
        """PUT /subscriptions/{id}. end_of_term is recorded but the change applies now."""
        sub = self.subscription(subscription_id)
        plan, quantity, addons = self._resolve_change(sub, request.plan, request.addons)
        self._apply_change(sub, plan, quantity, addons, end_of_term=request.end_of_term)
        return sub

    def cancel(self, subscription_id: str, *, at_term_end: bool) -> Subscription:
        sub = self.subscription(subscription_id)
        if sub.status in ("cancelled", "expired"):
            raise not_allowed("The subscription has already been cancelled.")
        if at_term_end:
            if sub.status == "non_renewing":
                raise not_allowed("The subscription is already scheduled for cancellation.")
            sub.status = "non_renewing"
            self._emit_change("subscription_cancellation_scheduled", sub)
        else:
            sub.status, sub.cancelled_at = "cancelled", self.calendar.today
            self._emit_change("subscription_cancelled", sub)
        return sub

    def reactivate(self, subscription_id: str) -> Subscription:
        sub = self.subscription(subscription_id)
        today = self.calendar.today
        if sub.status == "non_renewing":
            sub.status = "live"
            self._emit_change("subscription_scheduled_cancellation_removed", sub)
        elif sub.status == "cancelled" and today <= sub.term_end:
            sub.status, sub.cancelled_at = "live", None
            self._emit_change("subscription_reactivated", sub)
        elif sub.status == "cancelled":
            raise not_allowed(
                "The subscription cannot be reactivated: its term ended on "
                f"{sub.term_end.isoformat()}."
            )
        else:
            raise not_allowed(f"A {sub.status} subscription cannot be reactivated.")
        return sub

    def pause(self, subscription_id: str, request: PauseInput) -> Subscription:
        sub = self.subscription(subscription_id)
        today = self.calendar.today
        if sub.status != "live":
            raise not_allowed(f"Only live subscriptions can be paused; this one is {sub.status}.")
        pause_date = request.pause_date or today
        if pause_date < today:
            raise invalid("The pause_date cannot be in the past.")
        if pause_date > today:
            raise invalid("This simulator pauses from today only: leave pause_date out.")
        if request.resume_date is not None and request.resume_date <= pause_date:
            raise invalid("The resume_date must be after the pause_date.")
        sub.status, sub.paused_at, sub.resume_date = "paused", pause_date, request.resume_date
        self._emit_change("subscription_paused", sub)
        return sub

    def resume(self, subscription_id: str) -> Subscription:
        sub = self.subscription(subscription_id)
        if sub.status != "paused":
            raise not_allowed(f"Only paused subscriptions resume; this one is {sub.status}.")
        self._resume(sub, self.calendar.today)
        return sub

    # -- the calendar ------------------------------------------------------------------------

    def set_today(self, day: date) -> None:
        """Move the calendar; each day passed forwards runs what falls due on it, in order."""
        while self.calendar.today < day:
            self.calendar.today += ONE_DAY
            for sub in list(self.subscriptions.values()):
                self._new_day(sub, self.calendar.today)
        self.calendar.today = day

    def _new_day(self, sub: Subscription, day: date) -> None:
        if sub.status == "paused" and sub.resume_date is not None and sub.resume_date <= day:
            self._resume(sub, day)
        if day <= sub.term_end:
            return
        if sub.status == "trial":
            sub.status, sub.activated_at = "live", day
            self._start_term(sub, day)
            self._emit_change("subscription_activation", sub)
            self._charge(sub)
        elif sub.status == "live":
            self._start_term(sub, day)
            self._emit_change("subscription_renewed", sub)
            self._charge(sub)
        elif sub.status == "non_renewing":
            sub.status, sub.cancelled_at = "cancelled", day
            sub.next_billing_at = None
            self._emit_change("subscription_cancelled", sub)

    # -- convenience for tests and the demo --------------------------------------------------

    def subscribe(
        self,
        plan_code: str,
        *,
        quantity: int = 1,
        addons: dict[str, int] | None = None,
        customer_id: str | None = None,
        customer: CustomerInput | None = None,
    ) -> Subscription:
        """A subscription as if its checkout had been paid, events and all."""
        plan = self.plan(plan_code)
        lines = self._addon_lines(
            [AddonInput(addon_code=code, quantity=n) for code, n in (addons or {}).items()], plan
        )
        order = Order(plan, quantity, lines, customer_id=customer_id)
        if customer_id is None:
            order.new_customer = self._new_customer(customer or CustomerInput(display_name="Org"))
        return self._create(self._customer_for(order), plan, quantity, lines)

    # -- internals ---------------------------------------------------------------------------

    def _customer_for(self, order: Order) -> Customer:
        if order.customer_id is not None:
            return self.customer(order.customer_id)
        assert order.new_customer is not None
        customer = order.new_customer
        customer.customer_id = next(self._customer_ids)
        customer.created_time = self.calendar.stamp()
        self.customers[customer.customer_id] = customer
        return customer

    def _new_customer(self, given: CustomerInput) -> Customer:
        """A customer to be created on payment (the id is given then)."""
        fields: list[CustomField] = []
        for item in given.custom_fields:
            made = self._custom_field(item)
            if self.customer_fields is not None and made.label.lower() not in self.customer_fields:
                continue  # not a field this organisation defined
            fields = [old for old in fields if old.api_name != made.api_name] + [made]
        return Customer(
            customer_id="",
            display_name=given.display_name,
            first_name=given.first_name,
            last_name=given.last_name,
            email=given.email,
            company_name=given.company_name,
            created_time="",
            custom_fields=fields,
        )

    def _custom_field(self, given: CustomFieldInput) -> CustomField:
        """zuid / cf_zuid / zgid / cf_zgid become the organisation's defined fields."""
        name = (given.api_name or given.label or f"field_{given.customfield_id}").strip()
        label = name.removeprefix("cf_") if name.lower().startswith("cf_") else name
        if label.lower() in KNOWN_CUSTOMER_FIELDS:
            label = label.lower()
            field_id = KNOWN_CUSTOMER_FIELDS[label]
        else:
            field_id = given.customfield_id or next(self._field_ids)
        api_name = "cf_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        value = "" if given.value is None else str(given.value)
        return CustomField(field_id, given.label or label, api_name, value)

    def _addon_lines(self, given: list[AddonInput], plan: Plan) -> list[AddonLine]:
        lines: list[AddonLine] = []
        for item in given:
            addon = self.addon(item.addon_code)
            if any(line.addon.addon_code == addon.addon_code for line in lines):
                raise invalid(f"The add-on {addon.addon_code} is listed twice.")
            if item.quantity > 0:  # quantity 0 removes the add-on
                lines.append(AddonLine(addon, item.quantity))
        self._check_intervals(lines, plan)
        return lines

    @staticmethod
    def _check_intervals(lines: list[AddonLine], plan: Plan) -> None:
        for line in lines:
            if line.addon.months != plan.months:
                raise invalid(
                    f"The add-on {line.addon.addon_code} is billed {line.addon.interval_unit} "
                    f"but the plan {plan.plan_code} every {plan.months} month(s)."
                )

    def _resolve_change(
        self, sub: Subscription, plan_input: PlanInput | None, addons: list[AddonInput] | None
    ) -> tuple[Plan, int, list[AddonLine]]:
        """The plan, quantity and add-ons after a change; what is not given stays as it is."""
        self._require_changeable(sub)
        plan = self.plan(plan_input.plan_code) if plan_input is not None else sub.plan
        quantity = (plan_input.quantity if plan_input else None) or sub.quantity
        if addons is not None:
            return plan, quantity, self._addon_lines(addons, plan)
        self._check_intervals(sub.addons, plan)
        return plan, quantity, list(sub.addons)

    @staticmethod
    def _require_changeable(sub: Subscription) -> None:
        if sub.status == "paused":
            raise not_allowed("A paused subscription cannot be changed; resume it first.")
        if sub.status not in CHANGEABLE:
            raise not_allowed(f"A {sub.status} subscription cannot be changed.")

    def _create(
        self, customer: Customer, plan: Plan, quantity: int, addons: list[AddonLine]
    ) -> Subscription:
        today, stamp = self.calendar.today, self.calendar.stamp()
        trial = plan.trial_period > 0
        if trial:
            term_end = today + ONE_DAY * (plan.trial_period - 1)
            next_billing = term_end + ONE_DAY
        else:
            term_end, next_billing = _term(today, plan.months)
        sub = Subscription(
            subscription_id=next(self._subscription_ids),
            subscription_number=f"SUB-{next(self._numbers):05d}",
            customer=customer,
            plan=plan,
            quantity=quantity,
            addons=list(addons),
            status="trial" if trial else "live",
            created_time=stamp,
            updated_time=stamp,
            term_start=today,
            term_end=term_end,
            next_billing_at=next_billing,
            activated_at=None if trial else today,
            trial_starts_at=today if trial else None,
            trial_ends_at=term_end if trial else None,
        )
        self.subscriptions[sub.subscription_id] = sub
        self._emit_subscription("subscription_created", sub)
        if not trial:
            self._charge(sub)
        return sub

    def _apply_change(
        self,
        sub: Subscription,
        plan: Plan,
        quantity: int,
        addons: list[AddonLine],
        *,
        end_of_term: bool = False,
    ) -> None:
        previous = {
            "status": sub.status,
            "quantity": sub.quantity,
            "plan_code": sub.plan.plan_code,
            "plan_id": sub.plan.plan_id,
            "plan_name": sub.plan.name,
        }
        old_amount, old_months = sub.amount, sub.plan.months
        sub.plan, sub.quantity, sub.addons, sub.end_of_term = plan, quantity, addons, end_of_term
        if plan.months != old_months and sub.status != "trial":
            self._start_term(sub, self.calendar.today)  # a new interval starts a new term
        upgraded = sub.amount > old_amount
        kind = "subscription_upgraded" if upgraded else "subscription_downgraded"
        self._emit_change(kind, sub, previous)

    def _resume(self, sub: Subscription, day: date) -> None:
        assert sub.paused_at is not None
        credit = pause_credit(sub.amount, sub.term_start, sub.term_end, sub.paused_at, day)
        sub.credits += credit
        sub.last_pause_credit = credit
        sub.status, sub.paused_at, sub.resume_date = "live", None, None
        out_of_term = day > sub.term_end
        if out_of_term:
            self._start_term(sub, day)
        self._emit_change("subscription_resumed", sub)
        if out_of_term:  # a new invoice, with the pause credit applied
            self._charge(sub)

    def _start_term(self, sub: Subscription, start: date) -> None:
        sub.term_start = start
        sub.term_end, sub.next_billing_at = _term(start, sub.plan.months)

    def _charge(self, sub: Subscription) -> None:
        """Invoice the term, spend credits first, and thank for any payment."""
        applied = min(sub.credits, sub.amount)
        sub.credits -= applied
        due = sub.amount - applied
        if due <= 0:
            return
        payment = {
            "payment_id": next(self._payment_ids),
            "payment_mode": "creditcard",
            "amount": money(due),
            "date": self.calendar.today.isoformat(),
            "status": "success",
            "customer_id": sub.customer.customer_id,
            "customer_name": sub.customer.display_name,
            "email": sub.customer.email,
            "currency_code": "USD",
            "invoices": [
                {
                    "invoice_id": next(self._payment_ids),
                    "invoice_number": f"INV-{next(self._invoice_numbers):05d}",
                    "amount_applied": money(due),
                    "credits_applied": money(applied),
                }
            ],
        }
        self._emit("payment_thankyou", {"payment": payment}, self.calendar.stamp())

    def _emit_change(
        self, event_type: str, sub: Subscription, previous: dict[str, Any] | None = None
    ) -> None:
        sub.updated_time = self.calendar.stamp()
        self._emit_subscription(event_type, sub, previous)

    def _emit_subscription(
        self, event_type: str, sub: Subscription, previous: dict[str, Any] | None = None
    ) -> None:
        snapshot = sub.to_json()
        if previous is not None:
            snapshot["previous_attribute"] = previous
        self._emit(event_type, {"subscription": snapshot}, sub.updated_time)

    def _emit(self, event_type: str, data: dict[str, Any], created_time: str) -> None:
        today = self.calendar.today
        event_id = next(self._event_ids)
        payload = {
            "event_id": event_id,
            "event_type": event_type,
            "event_source": "web",
            "event_time": today.isoformat(),
            "event_time_formatted": today.strftime("%d %b %Y"),
            "created_time": created_time,
            "data": data,
        }
        event = Event(event_id, event_type, json.dumps(payload).encode())
        self.events.append(event)
        self._on_event(event)
