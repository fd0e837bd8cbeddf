"""A partial billing object (a ``GET /subscriptions`` list item) against a full one. Pure.

Zoho's list items carry the status, dates and a top-level ``plan_code``, but no ``plan`` object
(so no quantity), no add-ons and no customer. Kept as the stored snapshot, such an item would
erase what a full object (a webhook, ``GET /subscriptions/{id}``) said, and the next decision
would find no plan. So a partial object never replaces a full one: when it is not newer it
changes nothing; when it is newer, what it says is laid over the full one, field by field.
"""

from __future__ import annotations

from broker.core.billing_events import BillingSubscription


def is_partial(subscription: BillingSubscription) -> bool:
    """A list item: every full subscription object names its plan."""
    return subscription.plan is None


def listed_plan_code(subscription: BillingSubscription) -> str | None:
    code = (subscription.model_extra or {}).get("plan_code")
    return code if isinstance(code, str) and code else None


def merge_partial(full: BillingSubscription, partial: BillingSubscription) -> BillingSubscription:
    """The full snapshot updated with every field the newer partial one carries.

    If the item names another plan code, the full object's plan and add-ons describe the old
    plan and the item has no quantity for the new one: both are dropped, so the decision sees
    no plan (and changes nothing) until a full read arrives, rather than a wrong quantity.
    """
    merged = full.model_dump(mode="json") | partial.model_dump(
        mode="json", exclude_unset=True, exclude_none=True
    )
    code = listed_plan_code(partial)
    if code is not None and full.plan is not None and code != full.plan.plan_code:
        merged["plan"] = None
        merged["addons"] = []
    return BillingSubscription.model_validate(merged)
