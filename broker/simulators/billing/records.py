"""The simulated organisation's records (customers, subscriptions, hosted pages, events) and how
each one reads as Zoho JSON. No I/O, no decisions: those are in ``lifecycle.py`` and its helpers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from .catalog import Addon, Plan, money
from .clock import zoho_date

CURRENCY = "USD"

PageAction = Literal["new_subscription", "update_subscription"]


@dataclass
class CustomField:
    customfield_id: str
    label: str
    api_name: str
    value: str
    data_type: str = "string"

    def to_json(self) -> dict[str, Any]:
        return {
            "customfield_id": self.customfield_id,
            "label": self.label,
            "api_name": self.api_name,
            "placeholder": self.api_name,
            "value": self.value,
            "value_formatted": self.value,
            "data_type": self.data_type,
            "is_active": True,
        }


def field_hash(fields: list[CustomField]) -> dict[str, str]:
    hashed: dict[str, str] = {}
    for custom in fields:
        hashed[custom.api_name] = custom.value
        hashed[f"{custom.api_name}_unformatted"] = custom.value
    return hashed


@dataclass
class Customer:
    customer_id: str
    display_name: str
    first_name: str
    last_name: str
    email: str
    company_name: str
    created_time: str
    custom_fields: list[CustomField] = field(default_factory=list)

    def field_value(self, api_name: str) -> str | None:
        return next((f.value for f in self.custom_fields if f.api_name == api_name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "display_name": self.display_name,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "company_name": self.company_name,
            "created_time": self.created_time,
            "currency_code": CURRENCY,
            "custom_fields": [custom.to_json() for custom in self.custom_fields],
            "custom_field_hash": field_hash(self.custom_fields),
        }

    def list_json(self) -> dict[str, Any]:
        """A row of ``GET /customers``: the fields specs/customers.yml lists for it (no
        ``custom_fields``: a reader must read the customer in full to learn its zgid)."""
        full = self.to_json()
        return {name: full[name] for name in LISTED_CUSTOMER_FIELDS}


# specs/customers.yml components.schemas.list-all-customers-response (the ones we keep).
LISTED_CUSTOMER_FIELDS = (
    "customer_id",
    "display_name",
    "first_name",
    "last_name",
    "email",
    "company_name",
    "currency_code",
    "created_time",
)


@dataclass
class AddonLine:
    addon: Addon
    quantity: int

    @property
    def total(self) -> Decimal:
        return self.addon.price * self.quantity

    def to_json(self) -> dict[str, Any]:
        return {
            "addon_code": self.addon.addon_code,
            "addon_id": self.addon.addon_id,
            "name": self.addon.name,
            "price": money(self.addon.price),
            "quantity": self.quantity,
            "total": money(self.total),
        }


def order_amount(plan: Plan, quantity: int, addons: list[AddonLine]) -> Decimal:
    return plan.recurring_price * quantity + sum((line.total for line in addons), Decimal(0))


@dataclass
class Subscription:
    subscription_id: str
    subscription_number: str
    customer: Customer
    plan: Plan
    quantity: int
    addons: list[AddonLine]
    status: str
    created_time: str
    updated_time: str
    term_start: date
    term_end: date
    next_billing_at: date | None
    activated_at: date | None = None
    trial_starts_at: date | None = None
    trial_ends_at: date | None = None
    cancelled_at: date | None = None
    paused_at: date | None = None
    resume_date: date | None = None
    end_of_term: bool = False
    credits: Decimal = Decimal("0.00")
    last_pause_credit: Decimal | None = None
    custom_fields: list[CustomField] = field(default_factory=list)
    pause_scheduled: date | None = None  # a pause that starts on this day
    scheduled_resume: date | None = None  # the resume date that pause will carry
    card_declines: bool = False  # every charge fails until the card is fixed
    dunning_since: date | None = None
    dunning_retries: int = 0
    billing_cycles: int = -1  # -1 renews forever; n expires after n terms
    cycles_billed: int = 0
    expired_at: date | None = None

    @property
    def amount(self) -> Decimal:
        return order_amount(self.plan, self.quantity, self.addons)

    @property
    def period_days(self) -> int:
        return (self.term_end - self.term_start).days + 1

    def to_json(self) -> dict[str, Any]:
        """The full subscription, as ``GET /subscriptions/{id}`` and webhooks carry it."""
        return {
            "subscription_id": self.subscription_id,
            "subscription_number": self.subscription_number,
            "name": self.plan.name,
            "status": self.status,
            "interval": self.plan.interval,
            "interval_unit": self.plan.interval_unit,
            "current_term_starts_at": zoho_date(self.term_start),
            "current_term_ends_at": zoho_date(self.term_end),
            "next_billing_at": zoho_date(self.next_billing_at),
            "activated_at": zoho_date(self.activated_at),
            "trial_starts_at": zoho_date(self.trial_starts_at),
            "trial_ends_at": zoho_date(self.trial_ends_at),
            "cancelled_at": zoho_date(self.cancelled_at),
            "paused_at": zoho_date(self.paused_at),
            "resume_date": zoho_date(self.resume_date),
            "scheduled_pause_date": zoho_date(self.pause_scheduled),
            "billing_cycles": self.billing_cycles,
            "remaining_billing_cycles": (
                max(0, self.billing_cycles - self.cycles_billed) if self.billing_cycles > 0 else -1
            ),
            "expires_at": zoho_date(self.expired_at),
            "created_time": self.created_time,
            "updated_time": self.updated_time,
            "amount": money(self.amount),
            "sub_total": money(self.amount),
            "currency_code": CURRENCY,
            "currency_symbol": "$",
            "end_of_term": self.end_of_term,
            "auto_collect": True,
            "product_id": self.plan.product_id,
            "plan": {
                "plan_code": self.plan.plan_code,
                "plan_id": self.plan.plan_id,
                "name": self.plan.name,
                "price": money(self.plan.recurring_price),
                "quantity": self.quantity,
            },
            "addons": [line.to_json() for line in self.addons],
            "credits": money(self.credits),
            "last_pause_credit": (
                money(self.last_pause_credit) if self.last_pause_credit is not None else None
            ),
            "customer_id": self.customer.customer_id,
            "customer": self.customer.to_json(),
            "custom_fields": [custom.to_json() for custom in self.custom_fields],
            "custom_field_hash": field_hash(self.custom_fields),
        }

    def summary_json(self) -> dict[str, Any]:
        """A row of ``GET /subscriptions``: enough to pick one, then read it in full."""
        return {
            "subscription_id": self.subscription_id,
            "subscription_number": self.subscription_number,
            "name": self.plan.name,
            "status": self.status,
            "plan_code": self.plan.plan_code,
            "plan_name": self.plan.name,
            "product_id": self.plan.product_id,  # [unsure] docs/contracts.md §4
            "amount": money(self.amount),
            "interval": self.plan.interval,
            "interval_unit": self.plan.interval_unit,
            "current_term_starts_at": zoho_date(self.term_start),
            "current_term_ends_at": zoho_date(self.term_end),
            "next_billing_at": zoho_date(self.next_billing_at),
            "activated_at": zoho_date(self.activated_at),
            "expires_at": zoho_date(self.expired_at),
            "created_time": self.created_time,
            "updated_time": self.updated_time,
            "currency_code": CURRENCY,
            "auto_collect": True,
            "customer_id": self.customer.customer_id,
            "customer_name": self.customer.display_name,
            "email": self.customer.email,
        }


@dataclass
class Order:
    """What a hosted page sells: resolved at creation, applied exactly so on payment."""

    plan: Plan
    quantity: int
    addons: list[AddonLine]
    customer_id: str | None = None
    new_customer: Customer | None = None
    custom_fields: list[CustomField] = field(default_factory=list)
    subscription_id: str | None = None

    @property
    def amount(self) -> Decimal:
        return order_amount(self.plan, self.quantity, self.addons)


@dataclass
class HostedPage:
    hostedpage_id: str
    action: PageAction
    url: str
    order: Order
    redirect_url: str | None
    created_time: str
    expiring_time: str
    opened_at: float  # time.monotonic() when created
    lifetime: float
    # Zoho's documented words (hosted-pages.yml, components/schemas/status): ``fresh`` until
    # the buyer opens the page, then ``read``; ``success`` or ``failed`` once paid or declined,
    # ``cancelled`` when the buyer cancels (``force_cancelled`` is not simulated).
    status: Literal["fresh", "read", "success", "failed", "cancelled"] = "fresh"
    expired: bool = False  # forced by expire_hosted_pages()
    failure_reason: str | None = None
    subscription: dict[str, Any] | None = None  # snapshot taken on success

    @property
    def open(self) -> bool:
        return self.status in ("fresh", "read")

    def has_expired(self, now: float) -> bool:
        """An unpaid page past its lifetime (what Zoho answers for it is not documented)."""
        return self.open and (self.expired or now - self.opened_at >= self.lifetime)

    def to_json(self) -> dict[str, Any]:
        """The page as ``GET /hostedpages/{id}`` documents it: flat, ``data`` empty until paid."""
        page: dict[str, Any] = {
            "hostedpage_id": self.hostedpage_id,
            "status": self.status,
            "url": self.url,
            "action": self.action,
            "created_time": self.created_time,
            "expiring_time": self.expiring_time,
            "data": {"subscription": self.subscription} if self.subscription is not None else {},
        }
        return page


@dataclass
class Event:
    """One event as sent: ``body`` is the exact bytes every delivery and resend posts."""

    event_id: str
    event_type: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document
