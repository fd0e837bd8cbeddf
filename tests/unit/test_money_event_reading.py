"""Reading a money event's payload never fails on a field of an unexpected shape."""

from __future__ import annotations

from broker.core.money_events import MoneyKind, read_money_event

SUBSCRIPTION_ID = "100000000000000001"


def test_an_invoices_field_that_is_not_a_list_is_passed_over() -> None:
    data = {"refund": {"subscription_id": SUBSCRIPTION_ID, "invoices": 5, "amount": "10.00"}}

    money = read_money_event(MoneyKind.REFUND, data)

    assert money.subscription_ids == (SUBSCRIPTION_ID,)
