"""The organisation's books: every record by id, the calendar, and the event log.

Each change to a subscription goes through here to be stamped and logged as the event Zoho would
emit; the log keeps every event whether or not its webhook was ever delivered. Pure: events go to
the ``on_event`` callback, which the simulator turns into webhooks.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from .catalog import Catalog, Plan, money
from .clock import ONE_DAY, Calendar, term
from .errors import does_not_exist
from .ids import IdStyle, styled
from .records import AddonLine, Customer, CustomField, Event, HostedPage, Subscription


def _ids(start: int) -> Iterator[str]:
    return (str(number) for number in itertools.count(start))


class Ledger:
    def __init__(
        self,
        catalog: Catalog,
        today: date,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.calendar = Calendar(today)
        self.clock = clock
        self.on_event = on_event or (lambda event: None)
        self.id_style = IdStyle.STRINGS
        self.customers: dict[str, Customer] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.hosted_pages: dict[str, HostedPage] = {}
        self.events: list[Event] = []
        self.customer_ids = _ids(2077000000200001)
        self.subscription_ids = _ids(2077000000300001)
        self.page_ids = _ids(2077000000400001)
        self._event_ids = _ids(207700000000500001)  # 18 digits: beyond a float
        self._payment_ids = _ids(2077000000600001)
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

    # -- changes -----------------------------------------------------------------------------

    def add_customer(self, customer: Customer) -> Customer:
        customer.customer_id = next(self.customer_ids)
        customer.created_time = self.calendar.stamp()
        self.customers[customer.customer_id] = customer
        return customer

    def create(
        self,
        customer: Customer,
        plan: Plan,
        quantity: int,
        addons: list[AddonLine],
        custom_fields: list[CustomField] | None = None,
    ) -> Subscription:
        """A new subscription; its custom fields are set before its created event goes out."""
        today, stamp = self.calendar.today, self.calendar.stamp()
        trial = plan.trial_period > 0
        if trial:
            term_end = today + ONE_DAY * (plan.trial_period - 1)
            next_billing = term_end + ONE_DAY
        else:
            term_end, next_billing = term(today, plan.months)
        sub = Subscription(
            subscription_id=next(self.subscription_ids),
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
            custom_fields=list(custom_fields or []),
        )
        self.subscriptions[sub.subscription_id] = sub
        self.emit_subscription("subscription_created", sub)
        if not trial:
            sub.cycles_billed = 1
            self.charge(sub)
        return sub

    def start_term(self, sub: Subscription, start: date) -> None:
        sub.term_start = start
        sub.term_end, sub.next_billing_at = term(start, sub.plan.months)

    def charge(self, sub: Subscription) -> None:
        """Invoice the term, spend credits first, and thank for any payment."""
        applied = min(sub.credits, sub.amount)
        sub.credits -= applied
        due = sub.amount - applied
        if due <= 0:
            return
        self.emit("payment_thankyou", {"payment": self._payment(sub, due, applied)})

    def _payment(self, sub: Subscription, due: Any, applied: Any) -> dict[str, Any]:
        return {
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

    def emit_change(
        self, event_type: str, sub: Subscription, previous: dict[str, Any] | None = None
    ) -> None:
        sub.updated_time = self.calendar.stamp()
        self.emit_subscription(event_type, sub, previous)

    def emit_subscription(
        self, event_type: str, sub: Subscription, previous: dict[str, Any] | None = None
    ) -> None:
        snapshot = sub.to_json()
        if previous is not None:
            snapshot["previous_attribute"] = previous
        self.emit(event_type, {"subscription": snapshot}, sub.updated_time)

    def emit(self, event_type: str, data: dict[str, Any], created_time: str | None = None) -> None:
        """Log the event (for ``GET /events``) and hand it on to be posted as a webhook."""
        today = self.calendar.today
        event_id = next(self._event_ids)
        payload = {
            "event_id": event_id,
            "event_type": event_type,
            "event_source": "web",
            "event_time": today.isoformat(),
            "event_time_formatted": today.strftime("%d %b %Y"),
            "created_time": created_time or self.calendar.stamp(),
            "data": data,
        }
        body = json.dumps(styled(payload, self.id_style, len(self.events))).encode()
        event = Event(event_id, event_type, body)
        self.events.append(event)
        self.on_event(event)
