"""broker.mapping decides alone, without I/O: plan codes, statuses, desired state, the one call.

Every other part of the broker trusts these decisions, so each rule of docs/contracts.md §1, §3 and
§5 that mapping encodes is pinned here as a plain function call.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.config import PlansSettings
from broker.core.billing_events import BillingSubscription
from broker.core.event_kinds import EventKind, event_kind
from broker.core.mapping import (
    INACTIVE,
    Identity,
    Ignore,
    Park,
    PlanRef,
    PlatformCall,
    PlatformState,
    Target,
    classify_status,
    desired_state,
    parse_plan_code,
    plan_call,
    plan_route,
)
from tests.support.basics import APP_DOMAIN, STORAGE_MONTHLY, STORAGE_YEARLY, ZGID, ZUID
from tests.support.basics import subscription_event as event_payload

SUB_ID = "100000000000000001"
OUR_PRODUCT = "903000000045027"
OTHER_PRODUCT = "903000000099999"
IDENTITY = Identity(ZUID, ZGID)
PLANS = PlansSettings(
    storage_addon_monthly=STORAGE_MONTHLY,
    storage_addon_yearly=STORAGE_YEARLY,
    addon_pricing_keys={
        "testapp_admin": "SuperAdminLicense",
        "testapp_admin_Y": "SuperAdminLicense",
        "testapp_std": "StandardLicense",
    },
)


def billing(**changes: Any) -> BillingSubscription:
    """A billing snapshot in the default payload shape, as the pipeline would hand it over."""
    document = event_payload(**changes)["data"]["subscription"]
    return BillingSubscription.model_validate(document)


def decide(
    subscription: BillingSubscription,
    *,
    identity: Identity = IDENTITY,
    plans: PlansSettings = PLANS,
    our_products: frozenset[str] = frozenset({OUR_PRODUCT}),
    min_users: int = 1,
) -> Any:
    return desired_state(
        subscription,
        identity=identity,
        app_domain=APP_DOMAIN,
        plans=plans,
        our_products=our_products,
        min_users=min_users,
    )


def active(**changes: Any) -> PlatformState:
    values: dict[str, Any] = {
        "active": True,
        "zgid": ZGID,
        "zuid": ZUID,
        "planid": "1001",
        "frequency": "1",
        "no_of_users": "5",
        "storage_units": "0",
    }
    values.update(changes)
    return PlatformState(**values)


# --- parse_plan_code ---------------------------------------------------------------------------


def test_monthly_plan_code_maps_to_planid_and_frequency_1():
    assert parse_plan_code("testapp_1001", "testapp") == PlanRef("1001", "1")


def test_yearly_plan_code_with_Y_suffix_maps_to_frequency_4():
    assert parse_plan_code("testapp_1001_Y", "testapp") == PlanRef("1001", "4")


def test_non_numeric_planid_such_as_a_free_plan_is_read():
    assert parse_plan_code("testapp_FREE", "testapp") == PlanRef("FREE", "1")


@pytest.mark.parametrize(
    "plan_code",
    [
        "otherapp_1001",  # another app domain
        "testapp1001",  # no separator after the domain
        "testapplication_1001",  # domain is only a prefix of another word
        "xtestapp_1001",
        "",
    ],
)
def test_plan_code_of_another_app_domain_is_not_ours(plan_code):
    assert parse_plan_code(plan_code, "testapp") is None


@pytest.mark.parametrize("plan_code", ["testapp_", "testapp__Y", "testapp_10 01", "testapp_1/2"])
def test_plan_code_with_empty_or_unsafe_planid_is_not_ours(plan_code):
    assert parse_plan_code(plan_code, "testapp") is None


@pytest.mark.parametrize(
    ("plan_code", "domain"),
    [("TestApp_1001", "testapp"), ("testapp_1001", "TESTAPP"), ("TESTAPP_1001", "TestApp")],
)
def test_app_domain_matches_whatever_its_case(plan_code, domain):
    assert parse_plan_code(plan_code, domain) == PlanRef("1001", "1")


def test_planid_keeps_its_own_case():
    assert parse_plan_code("testapp_AbC9_Y", "testapp") == PlanRef("AbC9", "4")


# --- classify_status ---------------------------------------------------------------------------

ALWAYS = {
    "live": "active",
    "trial": "active",
    "non_renewing": "active",  # cancellation scheduled: still paid until the term ends
    "dunning": "active",  # retrying payment: the customer keeps the service meanwhile
    "future": "inactive",
    "creation_failed": "inactive",
    "cancelled": "inactive",
    "cancelled_from_dunning": "inactive",
    "expired": "inactive",
    "trial_expired": "inactive",
    "deleted": "inactive",
}


@pytest.mark.parametrize("pause_policy", ["none", "keep", "suspend"])
@pytest.mark.parametrize("on_unpaid", ["keep", "cancel"])
@pytest.mark.parametrize(("status", "expected"), sorted(ALWAYS.items()))
def test_status_class_does_not_depend_on_pause_or_unpaid_settings(
    status, expected, pause_policy, on_unpaid
):
    plans = PlansSettings(pause_policy=pause_policy, on_unpaid=on_unpaid)
    assert classify_status(status, plans) == expected


@pytest.mark.parametrize(
    ("pause_policy", "expected"),
    [("none", "active"), ("keep", "active"), ("suspend", "inactive")],
)
def test_paused_follows_the_pause_policy_only(pause_policy, expected):
    """Not chosen makes no call (the operator is told); keep makes none; suspend cancels."""
    for on_unpaid in ("keep", "cancel"):
        plans = PlansSettings(pause_policy=pause_policy, on_unpaid=on_unpaid)
        assert classify_status("paused", plans) == expected


@pytest.mark.parametrize(("on_unpaid", "expected"), [("keep", "active"), ("cancel", "inactive")])
def test_unpaid_follows_on_unpaid_setting_only(on_unpaid, expected):
    for pause_policy in ("none", "keep", "suspend"):
        plans = PlansSettings(pause_policy=pause_policy, on_unpaid=on_unpaid)
        assert classify_status("unpaid", plans) == expected


@pytest.mark.parametrize("status", ["unknown", "suspended", "", "live "])
def test_unknown_status_is_unclassified(status):
    assert classify_status(status, PlansSettings()) is None


@pytest.mark.parametrize(("status", "expected"), [("LIVE", "active"), ("Cancelled", "inactive")])
def test_status_case_is_ignored(status, expected):
    assert classify_status(status, PlansSettings()) == expected


# --- desired_state -----------------------------------------------------------------------------


def test_live_subscription_wants_its_plan_quantity_and_identity_on_platform():
    decision = decide(billing(plan_code="testapp_1001", quantity=7))
    assert decision == Target(active(no_of_users="7"), "status live")


def test_yearly_plan_wants_frequency_4():
    decision = decide(billing(plan_code="testapp_2002_Y", interval_unit="years"))
    assert isinstance(decision, Target)
    assert (decision.state.planid, decision.state.frequency) == ("2002", "4")


def test_storage_units_are_0_when_no_storage_addon_is_bought():
    decision = decide(billing(addons=[]))
    assert isinstance(decision, Target)
    assert decision.state.storage_units == "0"


@pytest.mark.parametrize("storage_code", [STORAGE_MONTHLY, STORAGE_YEARLY])
def test_storage_units_come_from_monthly_or_yearly_storage_addon_quantity(storage_code):
    decision = decide(billing(addons=[{"addon_code": storage_code, "quantity": 3}]))
    assert isinstance(decision, Target)
    assert decision.state.storage_units == "3"
    assert decision.state.custom_pricing == {}


def test_storage_units_are_0_when_no_storage_addon_codes_are_configured():
    subscription = billing(addons=[{"addon_code": STORAGE_MONTHLY, "quantity": 3}])
    decision = decide(subscription, plans=PlansSettings())
    assert isinstance(decision, Target)
    assert decision.state.storage_units == "0"


def test_other_addons_become_custom_pricing_keys_summed_by_key():
    subscription = billing(
        addons=[
            {"addon_code": "testapp_admin", "quantity": 2},
            {"addon_code": "testapp_admin_Y", "quantity": 1},
            {"addon_code": "testapp_std", "quantity": 10},
            {"addon_code": STORAGE_MONTHLY, "quantity": 4},
        ]
    )
    decision = decide(subscription)
    assert isinstance(decision, Target)
    assert decision.state.custom_pricing == {"StandardLicense": "10", "SuperAdminLicense": "3"}
    assert decision.state.storage_units == "4"


def test_addons_without_a_pricing_key_are_left_out_of_custom_pricing():
    decision = decide(billing(addons=[{"addon_code": "testapp_unmapped", "quantity": 9}]))
    assert isinstance(decision, Target)
    assert decision.state.custom_pricing == {}
    assert decision.state.storage_units == "0"


@pytest.mark.parametrize(
    ("identity", "named", "not_named"),
    [
        (Identity(None, ZGID), "zuid", "zgid"),
        (Identity(ZUID, None), "zgid", "zuid"),
        (Identity(ZUID, ""), "zgid", "zuid"),
    ],
)
def test_missing_identity_parks_naming_what_is_missing(identity, named, not_named):
    decision = decide(billing(), identity=identity)
    assert isinstance(decision, Park)
    assert decision.reason.startswith(f"{named} unknown")
    assert f"{not_named} unknown" not in decision.reason


def test_missing_zuid_and_zgid_parks_naming_both():
    decision = decide(billing(), identity=Identity())
    assert isinstance(decision, Park)
    assert decision.reason.startswith("zuid and zgid unknown")


def test_foreign_plan_is_ignored_with_a_reason_naming_plan_and_domain():
    decision = decide(billing(plan_code="otherapp_1001", product_id=OTHER_PRODUCT))
    assert isinstance(decision, Ignore)
    assert "otherapp_1001" in decision.reason
    assert APP_DOMAIN in decision.reason


def test_foreign_plan_is_ignored_even_without_identity():
    """Not our plan beats not knowing the org: nothing to park for someone else's event."""
    decision = decide(
        billing(plan_code="otherapp_1001", product_id=OTHER_PRODUCT), identity=Identity()
    )
    assert isinstance(decision, Ignore)


@pytest.mark.parametrize("status", ["cancelled", "expired", "deleted", "future"])
def test_inactive_status_wants_nothing_on_platform_even_without_identity(status):
    decision = decide(billing(status=status), identity=Identity())
    assert decision == Target(INACTIVE, f"status {status}")


def test_unknown_status_is_ignored_with_a_reason():
    decision = decide(billing(status="mystery"))
    assert isinstance(decision, Ignore)
    assert "mystery" in decision.reason


def test_paused_with_pause_policy_suspend_wants_nothing_on_platform():
    plans = PLANS.model_copy(update={"pause_policy": "suspend"})
    assert decide(billing(status="paused"), plans=plans) == Target(INACTIVE, "status paused")


def test_paused_with_pause_policy_keep_keeps_the_plan_without_a_warning():
    plans = PLANS.model_copy(update={"pause_policy": "keep"})
    decision = decide(billing(status="paused"), plans=plans)
    assert decision == Target(active(), "status paused")


def test_paused_without_a_pause_policy_keeps_the_plan_and_warns_the_operator():
    decision = decide(billing(status="paused"))
    assert isinstance(decision, Target)
    assert decision.state == active()
    assert decision.warning is not None
    assert "plans.pause_policy is not chosen" in decision.warning
    assert 'set pause_policy = "keep" or "suspend"' in decision.warning


# --- plan_call ---------------------------------------------------------------------------------


def test_first_active_target_is_an_add_post_at_target_zgid_and_planid():
    call = plan_call(None, active(storage_units="2"), SUB_ID)
    assert call is not None
    assert (call.action, call.method, call.zgid, call.planid) == ("add", "POST", ZGID, "1001")
    assert call.body == {
        "zuid": ZUID,
        "no_of_users": "5",
        "frequency": "1",
        "subscription_id": SUB_ID,
        "storage_units": "2",
    }


def test_changed_target_after_ack_is_a_modify_put_at_the_new_planid():
    call = plan_call(active(), active(planid="2002", frequency="4", no_of_users="9"), SUB_ID)
    assert call is not None
    assert (call.action, call.method, call.zgid, call.planid) == ("modify", "PUT", ZGID, "2002")
    assert call.body == {
        "zuid": ZUID,
        "no_of_users": "9",
        "frequency": "4",
        "subscription_id": SUB_ID,
        "storage_units": "0",
    }


def test_quantity_only_change_is_a_modify_at_the_same_planid():
    call = plan_call(active(), active(no_of_users="6"), SUB_ID)
    assert call is not None
    assert (call.method, call.planid, call.body["no_of_users"]) == ("PUT", "1001", "6")


def test_target_equal_to_acknowledged_needs_no_call():
    assert (
        plan_call(active(custom_pricing={"A": "1"}), active(custom_pricing={"A": "1"}), SUB_ID)
        is None
    )


def test_inactive_target_after_active_ack_cancels_at_the_acked_zgid_and_planid():
    acked = active(zgid="71111", zuid="61111", planid="1001")
    call = plan_call(acked, INACTIVE, SUB_ID)
    assert call is not None
    assert (call.action, call.method, call.zgid, call.planid) == (
        "cancel",
        "DELETE",
        "71111",
        "1001",
    )
    assert call.body == {"zuid": "61111", "subscription_id": SUB_ID}


@pytest.mark.parametrize("acked", [None, INACTIVE], ids=["never-acked", "acked-inactive"])
def test_inactive_target_with_nothing_active_on_platform_needs_no_call(acked):
    assert plan_call(acked, INACTIVE, SUB_ID) is None


def test_active_target_after_acked_cancel_is_an_add_again():
    call = plan_call(INACTIVE, active(), SUB_ID)
    assert call is not None
    assert (call.action, call.method, call.zgid, call.planid) == ("add", "POST", ZGID, "1001")


@pytest.mark.parametrize(
    ("acked", "target"),
    [
        (None, active(custom_pricing={"StandardLicense": "3"})),
        (active(), active(planid="2002", custom_pricing={"StandardLicense": "3"})),
        (active(), INACTIVE),
    ],
    ids=["add", "modify", "cancel"],
)
@pytest.mark.parametrize("pricing_format", ["object", "string"])
def test_every_body_value_is_a_json_string_except_an_object_custom_pricing(
    acked, target, pricing_format
):
    call = plan_call(acked, target, SUB_ID, custom_pricing_format=pricing_format)
    assert call is not None
    decoded = json.loads(json.dumps(call.body))
    scalars = {name: value for name, value in decoded.items() if name != "custom_pricing_json"}
    assert scalars
    assert all(isinstance(value, str) for value in scalars.values()), decoded
    if "custom_pricing_json" in decoded and pricing_format == "string":
        assert isinstance(decoded["custom_pricing_json"], str)


def test_custom_pricing_is_sent_as_an_object_by_default():
    call = plan_call(None, active(custom_pricing={"SuperAdminLicense": "10"}), SUB_ID)
    assert call is not None
    assert call.body["custom_pricing_json"] == {"SuperAdminLicense": "10"}


def test_custom_pricing_is_sent_as_a_json_string_when_so_configured():
    target = active(custom_pricing={"SuperAdminLicense": "10", "StandardLicense": "20"})
    call = plan_call(None, target, SUB_ID, custom_pricing_format="string")
    assert call is not None
    sent = call.body["custom_pricing_json"]
    assert isinstance(sent, str)
    assert json.loads(sent) == {"SuperAdminLicense": "10", "StandardLicense": "20"}


def test_empty_custom_pricing_is_left_out_of_the_body():
    call = plan_call(None, active(), SUB_ID)
    assert call is not None
    assert "custom_pricing_json" not in call.body


def test_cancel_body_carries_no_plan_fields():
    call = plan_call(active(custom_pricing={"A": "1"}), INACTIVE, SUB_ID)
    assert call is not None
    assert set(call.body) == {"zuid", "subscription_id"}


OTHER_ZGID, OTHER_ZUID = "72222", "62222"


def test_org_move_first_cancels_at_the_org_the_platform_has():
    """cf_zgid edited in billing: the old org must lose the app, so Cancel there comes first."""
    acked = active(zgid="71111", zuid="61111", planid="1001")
    target = active(zgid=OTHER_ZGID, zuid=OTHER_ZUID, planid="2002", no_of_users="7")
    call = plan_call(acked, target, SUB_ID)
    assert call is not None
    assert (call.action, call.method, call.zgid, call.planid) == (
        "cancel",
        "DELETE",
        "71111",
        "1001",
    )
    assert call.body == {"zuid": "61111", "subscription_id": SUB_ID}
    assert call.reaches == INACTIVE, "after this step the platform holds nothing: not done yet"


def test_org_move_after_its_cancel_is_an_add_at_the_new_org():
    target = active(zgid=OTHER_ZGID, zuid=OTHER_ZUID, planid="2002", no_of_users="7")
    call = plan_call(INACTIVE, target, SUB_ID)
    assert call is not None
    assert (call.action, call.method, call.zgid, call.planid) == ("add", "POST", OTHER_ZGID, "2002")
    assert call.body == {
        "zuid": OTHER_ZUID,
        "no_of_users": "7",
        "frequency": "1",
        "subscription_id": SUB_ID,
        "storage_units": "0",
    }
    assert call.reaches == target


def test_org_move_route_is_cancel_at_the_old_org_then_add_at_the_new_one():
    acked = active(zgid="71111", zuid="61111")
    target = active(zgid=OTHER_ZGID, zuid=OTHER_ZUID)
    route = plan_route(acked, target, SUB_ID)
    assert [(c.method, c.zgid, c.planid, c.body["zuid"]) for c in route] == [
        ("DELETE", "71111", "1001", "61111"),
        ("POST", OTHER_ZGID, "1001", OTHER_ZUID),
    ]


@pytest.mark.parametrize(
    ("acked", "target", "methods"),
    [
        (None, active(), ["POST"]),
        (INACTIVE, active(), ["POST"]),
        (active(), active(no_of_users="9"), ["PUT"]),
        (active(), active(zuid=OTHER_ZUID), ["PUT"]),  # a new owner in the same org
        (active(), INACTIVE, ["DELETE"]),
        (active(), active(), []),
        (None, INACTIVE, []),
    ],
)
def test_every_other_change_is_reached_in_at_most_one_call(acked, target, methods):
    route = plan_route(acked, target, SUB_ID)
    assert [call.method for call in route] == methods
    if route:
        assert route[-1].reaches == target


def test_platform_state_survives_its_json_round_trip():
    state = active(custom_pricing={"StandardLicense": "4"}, storage_units="2")
    assert PlatformState.from_json(state.to_json()) == state
    assert PlatformState.from_json(None) is None


# --- convergence -------------------------------------------------------------------------------

digits = st.text("0123456789", min_size=1, max_size=6)
active_states = st.builds(
    PlatformState,
    active=st.just(True),
    zgid=st.sampled_from([ZGID, "70000000002"]),
    zuid=st.sampled_from([ZUID, "60000000002"]),
    planid=st.sampled_from(["1001", "2002", "FREE"]),
    frequency=st.sampled_from(["1", "4"]),
    no_of_users=digits,
    storage_units=digits,
    custom_pricing=st.dictionaries(
        st.sampled_from(["SuperAdminLicense", "StandardLicense"]), digits, max_size=2
    ),
)
states = st.one_of(st.just(INACTIVE), active_states)


def platform_after(call: PlatformCall) -> PlatformState:
    """What the platform holds once ``call`` succeeded, read from the call alone."""
    if call.action == "cancel":
        return INACTIVE
    pricing = call.body.get("custom_pricing_json", {})
    return PlatformState(
        active=True,
        zgid=call.zgid,
        zuid=call.body["zuid"],
        planid=call.planid,
        frequency=call.body["frequency"],
        no_of_users=call.body["no_of_users"],
        storage_units=call.body["storage_units"],
        custom_pricing=json.loads(pricing) if isinstance(pricing, str) else pricing,
    )


@given(
    acked=st.one_of(st.none(), states),
    target=states,
    pricing_format=st.sampled_from(["object", "string"]),
)
def test_planning_again_after_the_planned_calls_succeed_needs_no_call(
    acked, target, pricing_format
):
    """Convergence: each call carries what it reaches, and the target is reached in one call,
    or two when the org changed (Cancel at the old org, Add at the new one)."""
    moved = bool(acked and acked.active and target.active and acked.zgid != target.zgid)
    calls = 0
    while (call := plan_call(acked, target, SUB_ID, custom_pricing_format=pricing_format)) and (
        calls < 3
    ):
        assert call.reaches == platform_after(call), "reaches is what the call itself says"
        acked = platform_after(call)
        calls += 1
    assert plan_call(acked, target, SUB_ID, custom_pricing_format=pricing_format) is None
    assert calls <= (2 if moved else 1)


# --- event kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("subscription_created", EventKind.SUBSCRIPTION),
        ("subscription_activation", EventKind.SUBSCRIPTION),
        ("subscription_paused", EventKind.SUBSCRIPTION),  # docs/contracts.md: name [unsure]
        ("subscription_resumed", EventKind.SUBSCRIPTION),
        ("subscription_deleted", EventKind.SUBSCRIPTION),
        ("trial_expiring", EventKind.NOTICE),
        ("billing_date_changed", EventKind.NOTICE),
        ("payment_thankyou", EventKind.OTHER),
        ("payment_declined", EventKind.OTHER),
        ("invoice_notification", EventKind.OTHER),
        ("creditnote_created", EventKind.OTHER),
        ("card_expiring", EventKind.OTHER),
        ("subscriptions_report", EventKind.OTHER),  # a prefix, not a substring
    ],
)
def test_only_subscription_events_are_of_the_subscription_kind(event_type, kind):
    assert event_kind(event_type) is kind


def test_a_quantity_below_min_users_is_parked_with_a_reason_naming_the_setting():
    decision = decide(billing(quantity=0))
    assert isinstance(decision, Park)
    assert "plan quantity 0 is below platform.min_users (1)" in decision.reason
    assert "correct the subscription's quantity in billing" in decision.reason


def test_min_users_is_a_floor_not_a_strict_bound():
    assert isinstance(decide(billing(quantity=2), min_users=3), Park)
    assert decide(billing(quantity=3), min_users=3).state == active(no_of_users="3")


def test_min_users_0_sends_a_quantity_of_0_as_billing_has_it():
    assert decide(billing(quantity=0), min_users=0).state == active(no_of_users="0")


def test_an_ended_subscription_with_quantity_0_is_still_cancelled():
    """The floor guards what is sent as the org's users; a cancellation carries no users."""
    assert decide(billing(quantity=0, status="cancelled")).state == INACTIVE
