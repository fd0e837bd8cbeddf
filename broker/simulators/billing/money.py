"""Money leaving a subscription without changing it: a refund, a chargeback, a voided invoice or
a credit note, each sent as its own event (docs/contracts.md §3, "Money events").

``payment_refunded`` and ``creditnote_added`` are Zoho's documented names; ``invoice_voided`` and
``payment_chargeback`` are the broker's best guess ([unsure]), sent so the broker's handling of
them can be tried. Payload shapes are the contract's reading, not a copy of Zoho's.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .catalog import money
from .ledger import Ledger
from .records import Subscription


class MoneyEventType(StrEnum):
    REFUND = "payment_refunded"
    CHARGEBACK = "payment_chargeback"
    INVOICE_VOIDED = "invoice_voided"
    CREDIT_NOTE = "creditnote_added"


class MoneyIds:
    """Ids for the money objects, apart from every other id the simulator hands out."""

    def __init__(self) -> None:
        self._ids = itertools.count(2077000000900001)

    def next(self) -> str:
        return str(next(self._ids))


def emit_money_event(
    ledger: Ledger,
    ids: MoneyIds,
    sub: Subscription,
    event_type: MoneyEventType,
    amount: Decimal | None = None,
) -> None:
    """Send ``event_type`` for the subscription's current term; ``amount`` defaults to all of it."""
    total = sub.amount
    taken = total if amount is None else amount
    customer = sub.customer.customer_id
    invoice_id = ids.next()
    payment = {
        "payment_id": ids.next(),
        "amount": money(total),
        "customer_id": customer,
        "currency_code": "USD",
        "invoices": [{"invoice_id": invoice_id, "subscription_ids": [sub.subscription_id]}],
    }
    data: dict[str, Any]
    if event_type is MoneyEventType.REFUND:
        payment["refunded_amount"] = money(taken)
        refund = {"refund_id": ids.next(), "amount": money(taken), "customer_id": customer}
        data = {"refund": refund | {"currency_code": "USD"}, "payment": payment}
    elif event_type is MoneyEventType.CHARGEBACK:
        chargeback = {"chargeback_id": ids.next(), "amount": money(taken), "customer_id": customer}
        data = {"chargeback": chargeback | {"currency_code": "USD"}, "payment": payment}
    elif event_type is MoneyEventType.INVOICE_VOIDED:
        data = {
            "invoice": {
                "invoice_id": invoice_id,
                "status": "void",
                "total": money(total),
                "customer_id": customer,
                "currency_code": "USD",
                "subscriptions": [{"subscription_id": sub.subscription_id}],
            }
        }
    else:
        data = {
            "creditnote": {
                "creditnote_id": ids.next(),
                "amount": money(taken),
                "total": money(taken),  # [doc] specs/credit-notes.yml credit_note-response
                "customer_id": customer,
                "currency_code": "USD",
                "subscription_id": sub.subscription_id,
            }
        }
    ledger.emit(event_type.value, data)
