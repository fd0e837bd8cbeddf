"""Payload fidelity, without a database: Zoho shapes beyond the default event body.

Literal payloads follow Zoho's published shapes (docs/contracts.md §3): a ``GET /subscriptions``
list item (no ``plan`` object: status, dates and a top-level ``plan_code``, as the billing
simulator's list returns), custom fields read from ``custom_field_hash`` and from flat ``cf_*``
keys, and a plan whose code and billing interval disagree.
"""

from __future__ import annotations

from typing import Any

from broker.core.billing_events import BillingSubscription
from broker.core.decide import Decision, Mark, Outcome, Snapshot
from broker.core.identity import identity_from_billing
from broker.core.mapping import INACTIVE, Identity, PlatformState
from broker.core.subscription_state import SubscriptionState
from tests.support.decide import (
    CUSTOMER,
    LIVE_5_USERS,
    LIVE_5_USERS_JSON,
    SID,
    ZGID,
    ZUID,
    decided,
    facts,
    snapshot,
    stored,
)

STORED_TIME = "2026-11-01T00:00:00+0000"  # the stored row's billing_updated_at, 1793491200.0


def list_item(updated: str = STORED_TIME, **changes: Any) -> Snapshot:
    """A row of Zoho's GET /subscriptions, literally: no plan object, no add-ons, no customer."""
    item = {
        "subscription_id": SID,
        "subscription_number": "SUB-00001",
        "name": "Test plan",
        "status": "live",
        "plan_code": "testapp_1001",
        "plan_name": "Pro",
        "amount": 100.0,
        "interval": 1,
        "interval_unit": "months",
        "current_term_starts_at": "2026-11-01",
        "current_term_ends_at": "2026-11-30",
        "next_billing_at": "2026-12-01",
        "activated_at": "2026-11-01",
        "expires_at": "",
        "created_time": "2026-11-01T09:00:00+0530",
        "updated_time": updated,
        "currency_code": "USD",
        "auto_collect": True,
        "customer_id": CUSTOMER,
        "customer_name": "Example Org",
        "email": "owner@example.com",
        **changes,
    }
    subscription = BillingSubscription.model_validate(item)
    return Snapshot.of(subscription, observed_at=0.0, source="reconcile:list")


def stored_full(**columns: Any) -> Any:
    full = snapshot(updated=STORED_TIME).subscription
    row = {"billing_json": full.model_dump_json(), "queued_json": LIVE_5_USERS_JSON, **columns}
    return stored(**row)


def test_a_list_item_with_the_stored_updated_time_leaves_the_full_snapshot_alone() -> None:
    decision = decided(facts(stored=stored_full()), list_item())
    assert decision == Decision(
        Outcome.UNCHANGED,
        "a partial object of subscription 100000000000000001 (no plan: a list item) is not "
        "newer than the full one stored, which is kept",
        SID,
    )
    assert decision.keep is None  # nothing is written: the stored plan stays


def test_a_newer_list_item_is_laid_over_the_full_snapshot_field_by_field() -> None:
    incoming = list_item("2026-11-02T00:00:00+0000", status="cancelled")
    decision = decided(facts(stored=stored_full()), incoming)
    assert decision.outcome is Outcome.QUEUED
    assert decision.send == INACTIVE
    assert decision.keep is not None
    kept = decision.keep.subscription
    assert kept.status == "cancelled"  # what the item says wins
    assert kept.plan is not None
    assert (kept.plan.plan_code, kept.plan.quantity) == (
        "testapp_1001",
        5,
    )
    assert kept.customer is not None
    assert kept.customer.email == "owner@example.com"
    assert identity_from_billing(kept) == Identity(ZUID, ZGID)
    assert decision.keep.updated_at == 1793577600.0  # the item's updated_time orders it


def test_a_newer_list_item_naming_another_plan_drops_the_old_plan_until_a_full_read() -> None:
    incoming = list_item("2026-11-02T00:00:00+0000", plan_code="testapp_2002")
    decision = decided(facts(stored=stored_full()), incoming)
    assert decision.outcome is Outcome.IGNORED
    assert decision.reason == (
        "status live but the snapshot names no plan (a list item carries only its plan_code: "
        "the full subscription must be read): nothing changed"
    )
    assert decision.send is None
    assert decision.keep is not None
    assert decision.keep.subscription.plan is None
    # A full read of that same moment then replaces the merged item.
    full = snapshot(updated="2026-11-02T00:00:00+0000", plan_code="testapp_2002")
    after = stored_full(
        billing_json=decision.keep.subscription.model_dump_json(), billing_updated_at=1793577600.0
    )
    assert decided(facts(stored=after), full).send == PlatformState(
        **{**LIVE_5_USERS.__dict__, "planid": "2002"}
    )


def test_a_full_object_with_the_same_updated_time_still_replaces_a_stored_list_item() -> None:
    partial = list_item().subscription
    row = stored(billing_json=partial.model_dump_json())
    decision = decided(facts(stored=row), snapshot(updated=STORED_TIME))
    assert decision.outcome is Outcome.QUEUED
    assert decision.send == LIVE_5_USERS


def test_a_yearly_plan_code_billed_monthly_is_sent_yearly_with_a_warning() -> None:
    incoming = snapshot(plan_code="testapp_1001_Y", interval_unit="months")
    decision = decided(facts(), incoming)
    warning = (
        "plan code 'testapp_1001_Y' says yearly (ends in _Y) but billing bills every 1 months: "
        "sent as yearly, following the plan code; fix the plan's code or its billing interval "
        "in Zoho Billing"
    )
    assert decision.outcome is Outcome.QUEUED
    assert decision.send is not None
    assert decision.send.frequency == "4"
    assert decision.warning == warning
    assert decision.mark == Mark(SubscriptionState.APPLIED, f"status live; warning: {warning}")


def test_a_monthly_plan_code_billed_yearly_is_sent_monthly_with_a_warning() -> None:
    decision = decided(facts(), snapshot(plan_code="testapp_1001", interval_unit="years"))
    assert decision.send is not None
    assert decision.send.frequency == "1"
    assert decision.warning is not None
    assert decision.warning.startswith(
        "plan code 'testapp_1001' says monthly (no _Y suffix) but billing bills every 1 years"
    )


def test_matching_intervals_give_no_warning() -> None:
    yearly_in_months = snapshot(plan_code="testapp_1001_Y", interval_unit="months", interval=12)
    for incoming in (
        snapshot(plan_code="testapp_1001", interval_unit="months"),
        snapshot(plan_code="testapp_1001_Y", interval_unit="years"),
        yearly_in_months,
    ):
        decision = decided(facts(), incoming)
        assert decision.outcome is Outcome.QUEUED
        assert decision.warning is None
        assert decision.mark == Mark(SubscriptionState.APPLIED, "status live")


def customer_with(**keys: Any) -> dict[str, Any]:
    return {
        "customer_id": CUSTOMER,
        "display_name": "Example Org",
        "email": "o@example.com",
        **keys,
    }


def subscription_with(customer: dict[str, Any], **keys: Any) -> BillingSubscription:
    document = {"subscription_id": SID, "status": "live", "customer": customer, **keys}
    return BillingSubscription.model_validate(document)


def test_flat_cf_keys_on_the_customer_are_read_unformatted_first() -> None:
    customer = customer_with(
        cf_zuid="60,000,000,001", cf_zuid_unformatted=60000000001, cf_zgid="70000000001"
    )
    assert identity_from_billing(subscription_with(customer)) == Identity(ZUID, ZGID)


def test_the_subscription_level_custom_field_hash_is_read() -> None:
    subscription = subscription_with(
        customer_with(custom_field_hash=[]),  # an empty hash serialised as a list
        custom_field_hash={
            "cf_zuid": "60000000001",
            "cf_zuid_unformatted": "60000000001",
            "cf_zgid": "70000000001",
            "cf_zgid_unformatted": "70000000001",
        },
    )
    assert identity_from_billing(subscription) == Identity(ZUID, ZGID)


def test_the_customers_fields_win_over_the_subscription_hash() -> None:
    subscription = subscription_with(
        customer_with(cf_zuid="60000000001", cf_zgid="70000000001"),
        custom_field_hash={"cf_zuid": "60000000009", "cf_zgid": "70000000009"},
    )
    assert identity_from_billing(subscription) == Identity(ZUID, ZGID)


def test_an_unreadable_unformatted_value_falls_back_to_the_formatted_one() -> None:
    customer = customer_with(
        custom_field_hash={"cf_zgid_unformatted": "", "cf_zgid": "70000000001"}
    )
    assert identity_from_billing(subscription_with(customer)).zgid == ZGID


def test_an_id_field_holding_a_list_or_an_object_is_no_id_and_is_passed_over() -> None:
    """Custom field values may be any JSON; only a string or an integer can be a zuid / zgid."""
    customer = customer_with(
        custom_fields=[
            {"label": "zuid", "value": ["60000000001"]},
            {"label": "zgid", "value": {"id": "70000000001"}},
        ],
        custom_field_hash={"cf_zuid": 60000000001, "cf_zgid": "70000000001"},
    )
    subscription = subscription_with(customer)
    assert subscription.customer is not None
    assert subscription.customer.custom_fields[0].value == ["60000000001"]
    assert identity_from_billing(subscription) == Identity(ZUID, ZGID)
