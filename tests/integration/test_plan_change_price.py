"""Which plan changes may skip checkout: prices are compared over the same
period, a change of billing cycle goes through checkout unless it is plainly cheaper, and a form
that changes nothing changes nothing.

The catalog below is the billing simulator's: Standard 10.00 a user a month or 100.00 a year,
Professional 20.00 / 200.00, storage 5.00 a unit a month or 50.00 a year.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from broker.core.catalog import Catalog, PlanChoice
from broker.core.plan_pricing import ChangeRoute, Configuration, route_change, yearly_cost
from broker.simulators.billing.inputs import PlanInput, SubscriptionChangeInput
from tests.support.pages import PROFESSIONAL, STANDARD, Browser, PageWorld

M, Y = "1", "4"  # monthly, yearly (docs/contracts.md §1)
CATALOG = Catalog(
    plans=[
        PlanChoice(
            STANDARD,
            "Standard",
            {M: "testapp_1001", Y: "testapp_1001_Y"},
            {M: Decimal("10.00"), Y: Decimal("100.00")},
        ),
        PlanChoice(
            PROFESSIONAL,
            "Professional",
            {M: "testapp_1002", Y: "testapp_1002_Y"},
            {M: Decimal("20.00"), Y: Decimal("200.00")},
        ),
    ],
    storage_codes={M: "testapp_storage", Y: "testapp_storage_Y"},
    storage_prices={M: Decimal("5.00"), Y: Decimal("50.00")},
)


def std(frequency: str, users: int, storage: int = 0) -> Configuration:
    return Configuration(STANDARD, frequency, users, storage)


def pro(frequency: str, users: int, storage: int = 0) -> Configuration:
    return Configuration(PROFESSIONAL, frequency, users, storage)


# (from, to, route): worked by hand from the prices above.
WORKED = {
    # The attack: a yearly plan swapped for a cheaper-looking monthly one, 500 a year -> 450 a
    # month (5,400 a year), must not skip checkout.
    "yearly_5_to_monthly_45": (std(Y, 5), std(M, 45), ChangeRoute.CHECKOUT),
    "fewer_users_same_cycle": (std(M, 5), std(M, 3), ChangeRoute.DIRECT),  # 50 -> 30
    "dearer_plan_same_cycle": (std(M, 5), pro(M, 5), ChangeRoute.CHECKOUT),  # 50 -> 100
    "same_price_same_cycle": (std(M, 1, 2), std(M, 2, 0), ChangeRoute.DIRECT),  # 20 -> 20
    "more_storage_yearly": (std(Y, 2), std(Y, 2, 1), ChangeRoute.CHECKOUT),  # 200 -> 250
    # Cycle changes: direct only when cheaper over a year and no bigger charge per period.
    "yearly_5_to_monthly_2": (std(Y, 5), std(M, 2), ChangeRoute.DIRECT),  # 500 -> 240 a year
    "yearly_5_to_monthly_4": (std(Y, 5), std(M, 4), ChangeRoute.DIRECT),  # 500 -> 480 a year
    "yearly_5_to_monthly_5": (std(Y, 5), std(M, 5), ChangeRoute.CHECKOUT),  # 500 -> 600 a year
    "yearly_6_to_monthly_5": (std(Y, 6), std(M, 5), ChangeRoute.CHECKOUT),  # 600 -> 600: equal
    "monthly_5_to_yearly_5": (std(M, 5), std(Y, 5), ChangeRoute.CHECKOUT),  # 600 -> 500, but
    # 500 is charged at once where 50 was: not plainly cheaper.
    "monthly_45_to_yearly_4": (std(M, 45), std(Y, 4), ChangeRoute.DIRECT),  # 5,400 -> 400
    "unchanged": (std(M, 5, 1), std(M, 5, 1), ChangeRoute.UNCHANGED),
    "unknown_current_plan": (Configuration("9999", M, 5, 0), std(M, 1), ChangeRoute.CHECKOUT),
}


@pytest.mark.parametrize("case", list(WORKED))
def test_worked_examples(case: str):
    old, new, route = WORKED[case]
    assert route_change(CATALOG, old, new).route is route


def test_no_known_current_choice_goes_to_checkout():
    assert route_change(CATALOG, None, std(M, 1)).route is ChangeRoute.CHECKOUT


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (std(M, 45), Decimal("5400.00")),
        (std(Y, 5), Decimal("500.00")),
        (pro(M, 3, 2), Decimal("840.00")),  # (3 x 20 + 2 x 5) x 12
        (pro(Y, 3, 2), Decimal("700.00")),  # 3 x 200 + 2 x 50
        (Configuration("9999", M, 1, 0), None),
    ],
)
def test_yearly_cost(config: Configuration, expected: Decimal | None):
    assert yearly_cost(CATALOG, config) == expected


# --- through the page ---------------------------------------------------------------------------


async def test_yearly_5_users_to_monthly_45_users_goes_through_checkout(
    world: PageWorld, owner: Browser
):
    """The literal attack: 500 a year must not become 450 a month without paying."""
    live = await world.subscribed(owner, users=5, frequency="yearly")
    page = await owner.submit(
        "/manage/change", {"planid": STANDARD, "frequency": "monthly", "users": "45"}
    )
    assert page.status == 303, page.text
    hosted = world.sim.hosted_pages[page.hostedpage_id]  # billing's checkout, not /manage
    assert hosted.action == "update_subscription"
    subscription = world.sim.subscriptions[live]
    assert (subscription.quantity, subscription.plan.plan_code) == (5, "testapp_1001_Y")
    assert [c for c in world.sim.calls("PUT") if "/subscriptions/" in c.path] == []
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]


async def test_cheaper_cycle_change_is_applied_directly(world: PageWorld, owner: Browser):
    live = await world.subscribed(owner, users=5, frequency="yearly")
    page = await owner.submit(
        "/manage/change",
        {"planid": STANDARD, "frequency": "monthly", "users": "2", "confirm": "yes"},
    )
    assert (page.status, page.location) == (303, "/manage"), page.text
    subscription = world.sim.subscriptions[live]
    assert (subscription.quantity, subscription.plan.plan_code) == (2, "testapp_1001")


async def test_an_unchanged_form_changes_nothing_and_says_so(
    world: PageWorld, owner: Browser, live: str
):
    form = await owner.get("/manage/change")
    assert form.status == 200
    before = len(world.sim.api_calls)
    page = await owner.submit(
        "/manage/change",
        {"planid": STANDARD, "frequency": "monthly", "users": "5", "storage": "0"},
    )
    assert (page.status, page.location) == (303, "/manage"), page.text
    assert len(world.sim.api_calls) == before  # not one billing call
    shown = await owner.get("/manage")
    assert "Nothing was changed" in shown.text
    assert "Your subscription was changed." not in shown.text
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]  # no Modify on the platform
    [audit] = await world.audit("change")
    assert audit["result"] == "unchanged"
    assert json.loads(audit["detail"]) == {
        "planid": STANDARD,
        "frequency": "1",
        "users": 5,
        "storage": 0,
    }  # the choice, never the form's CSRF token


async def test_a_change_skipping_checkout_is_decided_on_billings_price_not_a_stale_copy(
    world: PageWorld, owner: Browser
):
    """Forging 'no dearer' through a stale copy: billing moved the subscription to a cheaper
    plan and its webhook never arrived, so the broker's copy still says Professional."""
    live = await world.subscribed(owner, planid=PROFESSIONAL, users=5)  # 100.00 a month
    await world.settle()
    world.sim.hold_webhooks()  # billing's next change never reaches the broker
    world.sim.state.change(
        live, SubscriptionChangeInput(plan=PlanInput(plan_code="testapp_1001", quantity=5))
    )  # billing now: Standard, 5 users, 50.00 a month
    page = await owner.submit(
        "/manage/change", {"planid": STANDARD, "frequency": "monthly", "users": "10"}
    )  # 100.00 a month: no dearer than the stale copy, twice what billing charges today
    assert page.status == 303, page.text
    assert page.hostedpage_id in world.sim.hosted_pages  # to checkout, not applied directly
    subscription = world.sim.subscriptions[live]
    assert (subscription.quantity, subscription.plan.plan_code) == (5, "testapp_1001")
    assert [c for c in world.sim.calls("PUT") if "/subscriptions/" in c.path] == []
