"""Money events: billing reports money leaving (a refund, a chargeback, a voided invoice, a credit
note) without any change to the subscription. Pure: reading the payload and deciding what it
does to access, by the vendor's ``[money_events]`` settings. No I/O.

Names (docs/contracts.md §3): ``payment_refunded`` and ``creditnote_added`` are documented;
``invoice_voided``, ``creditnote_created`` and the chargeback names are not, so they are read when
they come and never relied on to arrive. Payload fields are read defensively: every id must be a
Zoho id and every amount a readable ``Decimal``, else the figure counts as unknown, and an unknown
figure never withholds access (the event is still recorded for the operator).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from broker.config import MoneyAction, MoneyEventSettings
from broker.core.ids import is_zoho_id
from broker.core.money import parse_amount


class MoneyKind(StrEnum):
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    INVOICE_VOIDED = "invoice_voided"
    CREDIT_NOTE = "credit_note"


MONEY_EVENT_TYPES: Mapping[str, MoneyKind] = MappingProxyType(
    {
        "payment_refunded": MoneyKind.REFUND,  # [doc] Zoho's event list
        "creditnote_added": MoneyKind.CREDIT_NOTE,  # [doc] Zoho's event list
        "creditnote_created": MoneyKind.CREDIT_NOTE,  # [unsure]
        "invoice_voided": MoneyKind.INVOICE_VOIDED,  # [unsure]
        "payment_chargeback": MoneyKind.CHARGEBACK,  # [unsure]
        "chargeback_created": MoneyKind.CHARGEBACK,  # [unsure]
    }
)
_CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217; anything else is not shown
# Where each kind's object sits under ``data`` (the first one present is read).
_ENTITIES = ("refund", "chargeback", "creditnote", "invoice", "payment")


def money_kind(event_type: str) -> MoneyKind | None:
    return MONEY_EVENT_TYPES.get(event_type.strip().lower())


@dataclass(frozen=True)
class MoneyEvent:
    """What a money event says, as far as it could be read."""

    kind: MoneyKind
    subscription_ids: tuple[str, ...]  # named in the payload, Zoho ids only
    customer_id: str | None
    amount: Decimal | None  # the money that left (refund, chargeback, voided or credited total)
    of_total: Decimal | None  # what it was taken from (the payment or invoice total)
    currency_code: str | None

    @property
    def full(self) -> bool:
        """All of the payment or invoice is gone; unknown figures are not full."""
        if self.kind is MoneyKind.INVOICE_VOIDED:
            return True
        if self.amount is None or self.of_total is None:
            return False
        return self.amount >= self.of_total


def read_money_event(kind: MoneyKind, data: Mapping[str, object]) -> MoneyEvent:
    """The figures of a money event's ``data`` (docs/contracts.md §3, "Money events")."""
    entity: Mapping[str, object] = next(
        (found for k in _ENTITIES if isinstance(found := data.get(k), dict)), {}
    )
    payment, invoice = _object(data, "payment"), _object(data, "invoice")
    ids = _subscription_ids(data)
    customer = _id(entity.get("customer_id")) or _id(payment.get("customer_id"))
    amount = parse_amount(entity.get("amount"))
    if kind is MoneyKind.CREDIT_NOTE and "total" in entity:
        # A credit note's documented figure is its total (specs/credit-notes.yml: "Total credits
        # raised in this credit note"); amount is only read where total is absent.
        amount = parse_amount(entity.get("total"))
    if kind is MoneyKind.INVOICE_VOIDED:
        amount = parse_amount(invoice.get("total"))
    if kind is MoneyKind.REFUND and entity is payment:
        # Only a payment object came: its refunded_amount is what left.
        amount = parse_amount(payment.get("refunded_amount"))
    of_total = parse_amount(payment.get("amount") if payment else invoice.get("total"))
    currency = entity.get("currency_code")
    return MoneyEvent(
        kind,
        ids,
        customer,
        amount,
        of_total,
        currency if isinstance(currency, str) and _CURRENCY.fullmatch(currency) else None,
    )


_SETTINGS: Mapping[MoneyKind, str] = MappingProxyType(
    {
        MoneyKind.REFUND: "on_refund",
        MoneyKind.CHARGEBACK: "on_chargeback",
        MoneyKind.INVOICE_VOIDED: "on_invoice_voided",
    }
)


class Verdict(StrEnum):
    RECORD = "record"  # stored and shown; access unchanged
    WITHHOLD = "withhold"  # a Cancel to the platform through the pipeline


@dataclass(frozen=True)
class MoneyDecision:
    verdict: Verdict
    reason: str


def decide_money(event: MoneyEvent, settings: MoneyEventSettings) -> MoneyDecision:
    """What the vendor's settings make of this money event."""
    what = event.kind.value.replace("_", " ")
    action = {
        MoneyKind.REFUND: settings.on_refund,
        MoneyKind.CHARGEBACK: settings.on_chargeback,
        MoneyKind.INVOICE_VOIDED: settings.on_invoice_voided,
        MoneyKind.CREDIT_NOTE: MoneyAction.RECORD,
    }[event.kind]
    if action is MoneyAction.RECORD:
        setting = _SETTINGS.get(event.kind)
        why = f"money_events.{setting} = record" if setting else "credit notes are only recorded"
        return MoneyDecision(Verdict.RECORD, f"{what} recorded; access unchanged ({why})")
    if event.kind is MoneyKind.REFUND and not event.full:
        return MoneyDecision(
            Verdict.RECORD,
            f"{what} recorded; access unchanged: not a full refund of the payment "
            f"({event.amount} of {event.of_total})",
        )
    return MoneyDecision(
        Verdict.WITHHOLD, f"{what}: access withheld (money_events.{_SETTINGS[event.kind]} = cancel)"
    )


def _subscription_ids(data: Mapping[str, object]) -> tuple[str, ...]:
    """Subscription ids wherever a money payload may name them: an entity's ``subscription_id``
    or ``subscription_ids``, or its invoices' (all [unsure]: see docs/contracts.md §3)."""
    found: list[str] = []
    for key in _ENTITIES:
        entity = data.get(key)
        if not isinstance(entity, dict):
            continue
        invoices = entity.get("invoices")
        listed_invoices = invoices if isinstance(invoices, list) else []
        holders = [entity] + [i for i in listed_invoices if isinstance(i, dict)]
        for holder in holders:
            values: list[object] = [holder.get("subscription_id")]
            listed = holder.get("subscription_ids")
            values += listed if isinstance(listed, list) else []
            subs = holder.get("subscriptions")
            if isinstance(subs, list):
                values += [s.get("subscription_id") for s in subs if isinstance(s, dict)]
            found += [sid for v in values if (sid := _id(v)) and sid not in found]
    return tuple(found)


def _object(data: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _id(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if is_zoho_id(text) else None
