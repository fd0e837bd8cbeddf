"""Pure decisions: a billing snapshot -> the platform state we want -> the one call that gets there.

The broker maps by *state*, not by event: whatever event brought a snapshot, we derive the desired
Developer Console state from it and compare that with what the platform last acknowledged. Repeats,
``subscription_created`` + ``subscription_activation`` pairs, renewals and stale events therefore
converge on their own. Nothing in this module does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from broker.config import PausePolicy, PlansSettings
from broker.core.billing_events import BillingSubscription
from broker.core.billing_status import BillingStatus, UnknownStatus, read_status
from broker.core.ours import Ownership, has_app_prefix, ownership
from broker.core.plan_interval import interval_warning

MONTHLY = "1"
YEARLY = "4"
YEARLY_SUFFIX = "_Y"

S = BillingStatus
# Statuses of docs/contracts.md §3 and §5, by what they mean for the platform. Paused and unpaid are
# the vendor's choice (``plans.pause_policy``, ``plans.on_unpaid``).
ACTIVE_STATUSES = frozenset({S.LIVE, S.TRIAL, S.NON_RENEWING, S.DUNNING})
# DELETED is ours: the pipeline records a subscription_deleted event as that status.
ENDED_STATUSES = frozenset(
    {S.CANCELLED, S.CANCELLED_FROM_DUNNING, S.EXPIRED, S.TRIAL_EXPIRED, S.DELETED}
)
NOT_STARTED_STATUSES = frozenset({S.FUTURE, S.CREATION_FAILED})


class PlatformAction(StrEnum):
    """The three Developer Console Subscription calls (docs/contracts.md §1)."""

    ADD = "add"
    MODIFY = "modify"
    CANCEL = "cancel"


HttpMethod = Literal["POST", "PUT", "DELETE"]
# docs/contracts.md §1: one URL, and the method says which call it is.
ACTION_METHODS: Mapping[PlatformAction, HttpMethod] = MappingProxyType(
    {PlatformAction.ADD: "POST", PlatformAction.MODIFY: "PUT", PlatformAction.CANCEL: "DELETE"}
)


@dataclass(frozen=True)
class PlanRef:
    planid: str
    frequency: Literal["1", "4"]


def parse_plan_code(plan_code: str, app_domain: str) -> PlanRef | None:
    """``{appdomain}_{planid}`` is monthly, ``{appdomain}_{planid}_Y`` yearly; else not ours."""
    if not has_app_prefix(plan_code, app_domain):
        return None
    rest = plan_code[len(app_domain) + 1 :]
    if rest.endswith(YEARLY_SUFFIX):
        planid, frequency = rest[: -len(YEARLY_SUFFIX)], YEARLY
    else:
        planid, frequency = rest, MONTHLY
    if not planid or not planid.replace("-", "").replace("_", "").isalnum():
        return None
    return PlanRef(planid=planid, frequency=frequency)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Identity:
    zuid: str | None = None
    zgid: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.zuid and self.zgid)

    def missing(self) -> list[str]:
        return [name for name in ("zuid", "zgid") if not getattr(self, name)]


@dataclass(frozen=True)
class PlatformState:
    """What the Developer Console should hold for one subscription (or that it should not)."""

    active: bool
    zgid: str = ""
    zuid: str = ""
    planid: str = ""
    frequency: str = ""
    no_of_users: str = ""
    storage_units: str = ""
    custom_pricing: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> PlatformState | None:
        return None if not text else cls(**json.loads(text))


INACTIVE = PlatformState(active=False)


@dataclass(frozen=True)
class Target:
    state: PlatformState
    why: str
    warning: str | None = None  # a vendor mistake the operator should see (plan_interval)


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class Park:
    reason: str


@dataclass(frozen=True)
class Unmapped:
    """A subscription of the app's product (or of an unknown one) whose plan code does not map:
    nothing can be sent, and the vendor must be told rather than the customer dropped."""

    reason: str


# What ``desired_state`` answers: the platform state to reach, or why there is none.
DesiredState = Target | Ignore | Park | Unmapped

# The words every quantity park's reason holds, so the page can say what the subscription waits
# for (the subscriptions row keeps the reason, not the Park).
BELOW_MIN_USERS = "is below platform.min_users"


def parked_for_quantity(parked_reason: str) -> bool:
    """Whether a stored parked reason is the quantity floor's rather than a missing org."""
    return BELOW_MIN_USERS in parked_reason


def classify_status(
    status: BillingStatus | UnknownStatus | str, plans: PlansSettings
) -> Literal["active", "inactive"] | None:
    """What a status means for the platform; None for one this broker does not know. Text is
    read as ``billing_status.read_status`` reads it."""
    status = read_status(status)
    if status in ACTIVE_STATUSES:
        return "active"
    if status in ENDED_STATUSES or status in NOT_STARTED_STATUSES:
        return "inactive"
    if status == S.PAUSED:
        # "none" (not chosen) makes no call either: the operator is told (``pause_warning``).
        return "inactive" if plans.pause_policy == PausePolicy.SUSPEND else "active"
    if status == S.UNPAID:
        return "active" if plans.on_unpaid == "keep" else "inactive"
    return None


def desired_state(
    subscription: BillingSubscription,
    *,
    identity: Identity,
    app_domain: str,
    plans: PlansSettings,
    our_products: frozenset[str],
    min_users: int,
) -> DesiredState:
    """Derive the platform state a billing snapshot calls for (``our_products``: the app's
    billing products, set or learned; empty when unknown). A quantity below ``min_users``
    (``platform.min_users``) is parked, not sent: the contract does not say the platform takes
    it, and a refused call would only end as a dead letter."""
    status = subscription.status
    category = classify_status(status, plans)
    if category is None:
        return Ignore(f"unknown subscription status {status!r}: nothing changed on the platform")
    if category == "inactive":
        return Target(INACTIVE, f"status {status}")
    if subscription.plan is None:
        return Ignore(
            f"status {status} but the snapshot names no plan (a list item carries only its "
            "plan_code: the full subscription must be read): nothing changed"
        )
    plan_code = subscription.plan.plan_code
    plan_ref = parse_plan_code(plan_code, app_domain)
    product_id = subscription.effective_product_id()
    owner = ownership(
        plan_maps=plan_ref is not None, product_id=product_id, our_products=our_products
    )
    if owner is Ownership.OTHER_PRODUCT:
        return Ignore(
            f"plan {plan_code!r} is not a plan of app domain {app_domain!r} and product "
            f"{product_id} is not the app's"
        )
    if plan_ref is None:
        return Unmapped(_unmapped_reason(plan_code, app_domain, product_id, our_products))
    if not identity.complete:
        return Park(
            f"{' and '.join(identity.missing())} unknown: set the cf_zuid / cf_zgid custom "
            "fields on the billing customer, or have the user open the Manage Subscription page"
        )
    assert identity.zuid
    assert identity.zgid
    quantity = subscription.plan.quantity
    if quantity < min_users:
        return Park(
            f"plan quantity {quantity} {BELOW_MIN_USERS} ({min_users}): not sent to "
            "the platform; correct the subscription's quantity in billing (or set "
            "platform.min_users to 0 to send it as is)"
        )
    return Target(
        PlatformState(
            active=True,
            zgid=identity.zgid,
            zuid=identity.zuid,
            planid=plan_ref.planid,
            frequency=plan_ref.frequency,
            no_of_users=str(quantity),
            storage_units=str(storage_units(subscription, plans)),
            custom_pricing=custom_pricing(subscription, plans),
        ),
        f"status {status}",
        _joined(
            interval_warning(
                subscription.plan.plan_code,
                yearly=plan_ref.frequency == YEARLY,
                interval=subscription.interval,
                interval_unit=subscription.interval_unit,
            ),
            pause_warning(status, plans),
        ),
    )


def _unmapped_reason(
    plan_code: str, app_domain: str, product_id: str | None, our_products: frozenset[str]
) -> str:
    if our_products and product_id:
        whose = f"a subscription of the app's product {product_id}"
    elif not our_products:
        whose = (
            "a subscription whose product cannot be told apart from the app's (set "
            "platform.product_id)"
        )
    else:
        whose = "a subscription that names no product"
    return (
        f"{whose} has plan {plan_code!r}, which does not map to a Developer Console plan "
        f"({app_domain}_{{planid}} or {app_domain}_{{planid}}_Y): nothing was sent to the "
        "platform; correct the plan code in billing"
    )


PAUSE_NOT_CHOSEN = (
    "paused in billing, but plans.pause_policy is not chosen: the app keeps working and the "
    'platform was not told; set pause_policy = "keep" or "suspend"'
)


def pause_warning(status: str, plans: PlansSettings) -> str | None:
    """The operator's note when billing paused a subscription the vendor has no policy for."""
    if status == S.PAUSED and plans.pause_policy == PausePolicy.NONE:
        return PAUSE_NOT_CHOSEN
    return None


def _joined(*warnings: str | None) -> str | None:
    present = [w for w in warnings if w]
    return "; ".join(present) if present else None


def storage_units(subscription: BillingSubscription, plans: PlansSettings) -> int:
    codes = {c for c in (plans.storage_addon_monthly, plans.storage_addon_yearly) if c}
    return sum(addon.quantity for addon in subscription.addons if addon.addon_code in codes)


def custom_pricing(subscription: BillingSubscription, plans: PlansSettings) -> dict[str, str]:
    totals: dict[str, int] = {}
    for addon in subscription.addons:
        key = plans.addon_pricing_keys.get(addon.addon_code)
        if key:
            totals[key] = totals.get(key, 0) + addon.quantity
    return {key: str(total) for key, total in sorted(totals.items())}


@dataclass(frozen=True)
class PlatformCall:
    action: PlatformAction
    zgid: str
    planid: str
    body: dict[str, object]  # JSON: strings, and custom pricing as an object or a string
    # What the platform holds once this call succeeds. Usually the target; for an org move the
    # first call (Cancel at the old org) reaches INACTIVE and the Add at the new org follows.
    reaches: PlatformState

    @property
    def method(self) -> HttpMethod:
        return ACTION_METHODS[self.action]


def plan_call(
    acknowledged: PlatformState | None,
    target: PlatformState,
    subscription_id: str,
    *,
    custom_pricing_format: Literal["object", "string"] = "object",
) -> PlatformCall | None:
    """The next call that moves the platform from what it acknowledged towards the target.

    One call gets there, except for an org move (the target's zgid is not the one the platform
    has): a Modify at the new org would leave the old org the app forever, so the old org's
    subscription is cancelled first (``reaches`` is INACTIVE) and the next call is an Add.
    """
    was_active = acknowledged is not None and acknowledged.active
    if (
        acknowledged is not None
        and acknowledged.active
        and (not target.active or target.zgid != acknowledged.zgid)
    ):
        return PlatformCall(
            PlatformAction.CANCEL,
            acknowledged.zgid,
            acknowledged.planid,
            {"zuid": acknowledged.zuid, "subscription_id": subscription_id},
            INACTIVE,
        )
    if not target.active:
        return None  # never reached the platform, or already cancelled there
    if was_active and acknowledged == target:
        return None
    body: dict[str, object] = {
        "zuid": target.zuid,
        "no_of_users": target.no_of_users,
        "frequency": target.frequency,
        "subscription_id": subscription_id,
        "storage_units": target.storage_units,
    }
    if target.custom_pricing:
        pricing = dict(target.custom_pricing)
        body["custom_pricing_json"] = (
            json.dumps(pricing) if custom_pricing_format == "string" else pricing
        )
    if was_active:
        return PlatformCall(PlatformAction.MODIFY, target.zgid, target.planid, body, target)
    return PlatformCall(PlatformAction.ADD, target.zgid, target.planid, body, target)


MAX_ROUTE = 2  # an org move: Cancel, then Add


def plan_route(
    acknowledged: PlatformState | None,
    target: PlatformState,
    subscription_id: str,
    *,
    custom_pricing_format: Literal["object", "string"] = "object",
) -> list[PlatformCall]:
    """Every call from the acknowledged state to the target, assuming each one succeeds."""
    route: list[PlatformCall] = []
    state = acknowledged
    while len(route) < MAX_ROUTE:
        call = plan_call(
            state, target, subscription_id, custom_pricing_format=custom_pricing_format
        )
        if call is None:
            break
        route.append(call)
        state = call.reaches
    return route
