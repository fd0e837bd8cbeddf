"""The literal Zoho payloads the tests start from (tests/fixtures/payloads/) are what the broker
reads: each parses as the broker's webhook model and says what docs/contracts.md §3 says it does,
and the simulators' payload builder sends nothing those shapes lack. Pure: files and models only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from broker.core.billing_events import parse_webhook_event
from broker.core.event_kinds import EventKind, event_kind
from broker.core.identity import identity_from_billing
from broker.core.money_events import money_kind, read_money_event
from broker.simulators.payloads import subscription_webhook
from tests.support.basics import subscription_event
from tests.support.payloads import literal_payload, payload_names

SUBSCRIPTION_ID = "100000000000000001"
CUSTOMER_ID = "900000000000000001"
# Each subscription event kind of docs/contracts.md §3 the broker acts on, with the status its
# literal payload carries (activation is Zoho's ``subscription_activation``, not ``_activated``).
SUBSCRIPTION_STATUSES = {
    "subscription_created": "live",
    "subscription_activation": "live",
    "subscription_renewed": "live",
    "subscription_upgraded": "live",
    "subscription_downgraded": "live",
    "subscription_cancelled": "cancelled",
    "subscription_expired": "expired",
    "subscription_paused": "paused",
    "subscription_resumed": "live",
    "subscription_deleted": "cancelled",
}
# Money events (docs/contracts.md §3, "Money events"): the figures worked from each file by the
# contract's reading rules: the refund's amount of the payment's amount; a credit note's total
# (no payment or invoice: no whole); a voided invoice's total, of that same total.
MONEY_FIGURES = {
    "payment_refunded": (Decimal("80.00"), Decimal("80.00")),
    "creditnote_added": (Decimal("13.33"), None),
    "invoice_voided": (Decimal("80.00"), Decimal("80.00")),
}
OTHER_EVENTS = {"payment_declined"}


def key_paths(document: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document, list items folded into ``[]``."""
    if isinstance(document, dict):
        paths = set()
        for key, value in document.items():
            paths |= {f"{prefix}.{key}"} | key_paths(value, f"{prefix}.{key}")
        return paths
    if isinstance(document, list):
        return set().union(*(key_paths(item, f"{prefix}[]") for item in document))
    return set()


def test_there_is_one_literal_payload_for_each_event_kind_the_broker_handles() -> None:
    expected = set(SUBSCRIPTION_STATUSES) | set(MONEY_FIGURES) | OTHER_EVENTS
    assert set(payload_names()) == expected


@pytest.mark.parametrize("name", sorted(SUBSCRIPTION_STATUSES))
def test_each_subscription_payload_parses_with_its_subscription_and_identity(name: str) -> None:
    event = parse_webhook_event(literal_payload(name))

    assert (event.event_type, event_kind(event.event_type)) == (name, EventKind.SUBSCRIPTION)
    subscription = event.data.subscription
    assert subscription is not None
    assert (subscription.subscription_id, subscription.status) == (
        SUBSCRIPTION_ID,
        SUBSCRIPTION_STATUSES[name],
    )
    assert subscription.effective_customer_id() == CUSTOMER_ID
    assert subscription.plan is not None
    assert subscription.plan.plan_code == "testapp_1001"
    identity = identity_from_billing(subscription)
    assert (identity.zuid, identity.zgid) == ("60000000001", "70000000001")


@pytest.mark.parametrize("name", sorted(MONEY_FIGURES))
def test_each_money_payload_parses_and_names_its_subscription_and_figures(name: str) -> None:
    document = literal_payload(name)
    event = parse_webhook_event(document)
    kind = money_kind(event.event_type)
    assert kind is not None, name

    money = read_money_event(kind, document["data"])

    assert money.subscription_ids == (SUBSCRIPTION_ID,)
    assert money.customer_id == CUSTOMER_ID
    assert (money.amount, money.of_total) == MONEY_FIGURES[name]
    assert money.currency_code == "USD"


def test_a_declined_payment_parses_as_an_event_that_changes_no_subscription() -> None:
    event = parse_webhook_event(literal_payload("payment_declined"))

    assert event_kind(event.event_type) is EventKind.OTHER
    assert event.data.subscription is not None
    assert event.data.subscription.status == "dunning"


def test_the_simulators_builder_sends_no_key_the_literal_shape_lacks() -> None:
    """The simulators build their webhooks in code; they may lag the literal shape (send fewer
    keys) but never invent one Zoho does not send."""
    built = subscription_webhook(
        event_id="1",
        event_type="subscription_created",
        subscription_id=SUBSCRIPTION_ID,
        status="live",
        plan_code="testapp_1001",
        quantity=5,
        addons=[{"addon_code": "testapp_storage", "name": "Storage", "price": 5.0, "quantity": 1}],
        updated_time="2026-11-21T10:00:00+0530",
        customer_id=CUSTOMER_ID,
        email="owner@example.com",
        zuid="60000000001",
        zgid="70000000001",
    )
    literal = literal_payload("subscription_created")
    # The literal subscription has no add-on; its documented keys (docs/contracts.md §3) are these.
    literal["data"]["subscription"]["addons"] = [
        {"addon_code": "", "name": "", "price": 0, "quantity": 0}
    ]

    assert key_paths(built) - key_paths(literal) == set()


def test_subscription_event_starts_from_the_literal_payload_of_its_type() -> None:
    upgraded = subscription_event("subscription_upgraded", event_id="2077000000080099")

    literal = literal_payload("subscription_upgraded")["data"]["subscription"]
    sent = upgraded["data"]["subscription"]
    assert sent["previous_attribute"] == literal["previous_attribute"]
    assert (sent["activated_at"], sent["end_of_term"]) == ("2026-11-01", False)
    assert upgraded["event_id"] == "2077000000080099"


def test_subscription_event_fills_the_chosen_fields_and_leaves_the_file_untouched() -> None:
    first = subscription_event(
        "subscription_renewed", subscription_id="100000000000000777", quantity=9, zuid=None
    )
    first["data"]["subscription"]["plan"]["plan_code"] = "changed_by_a_test"

    event = parse_webhook_event(first)
    again = subscription_event("subscription_renewed")

    assert event.data.subscription is not None
    assert event.data.subscription.subscription_id == "100000000000000777"
    assert event.data.subscription.plan is not None
    assert event.data.subscription.plan.quantity == 9
    assert identity_from_billing(event.data.subscription).zuid is None
    assert again["data"]["subscription"]["plan"]["plan_code"] == "testapp_1001"
    assert literal_payload("subscription_renewed")["data"]["subscription"]["plan"]["quantity"] == 5


def test_a_subscription_event_without_its_own_file_takes_the_default_shape() -> None:
    unpaid = subscription_event("subscription_unpaid", status="unpaid")

    assert unpaid["event_type"] == "subscription_unpaid"
    assert key_paths(unpaid) == key_paths(literal_payload("subscription_created"))


def test_a_money_event_made_to_carry_a_subscription_takes_the_default_shape() -> None:
    """A refund's own file has no subscription; tests that send one carrying a subscription (as
    Zoho's payment events may) get the default subscription shape under that event type."""
    refund = subscription_event("payment_refunded", event_id="2077000000080098")

    assert refund["event_type"] == "payment_refunded"
    assert key_paths(refund) == key_paths(literal_payload("subscription_created"))
