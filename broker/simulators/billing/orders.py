"""What the organisation will sell: plan and add-on codes resolved against the catalog, customer
custom fields named as the organisation defined them, and whether a subscription may change.

Pure validation: refusals are ``ApiError``s answered as Zoho would; nothing is stored here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection

from .catalog import Addon, Catalog, Plan
from .errors import CATALOG_ITEM_MISSING, ApiError, invalid, not_allowed
from .inputs import AddonInput, CustomerInput, CustomFieldInput, PlanInput
from .records import AddonLine, Customer, CustomField, Subscription

CHANGEABLE = ("live", "trial", "non_renewing")
# The custom fields the organisation has defined for customers (docs/contracts.md section 3).
KNOWN_CUSTOMER_FIELDS = {"zuid": "2077000000013001", "zgid": "2077000000013002"}


class Orders:
    def __init__(self, catalog: Catalog, customer_fields: Collection[str] | None) -> None:
        self.catalog = catalog
        # The customer custom fields the organisation defined (labels); None accepts any. The
        # vendor's documented setup defines only "zuid": a cf_zgid sent then is dropped.
        self.customer_fields = (
            None if customer_fields is None else {label.lower() for label in customer_fields}
        )
        self._field_ids = (str(number) for number in itertools.count(2077000000013101))

    def plan(self, plan_code: str) -> Plan:
        found = self.catalog.plans.get(plan_code)
        if found is None or found.status != "active":
            raise ApiError(400, CATALOG_ITEM_MISSING, f"The plan {plan_code} does not exist.")
        return found

    def addon(self, addon_code: str) -> Addon:
        found = self.catalog.addons.get(addon_code)
        if found is None or found.status != "active":
            raise ApiError(400, CATALOG_ITEM_MISSING, f"The add-on {addon_code} does not exist.")
        return found

    def customer_custom_fields(
        self, kept: list[CustomField], given: list[CustomFieldInput]
    ) -> list[CustomField]:
        """A customer's fields after an update names some by label; a label the organisation
        did not define for customers is dropped, as Zoho keeps only defined fields."""
        fields = list(kept)
        for item in given:
            made = self.custom_field(item)
            if self.customer_fields is not None and made.label.lower() not in self.customer_fields:
                continue  # not a field this organisation defined
            fields = [old for old in fields if old.api_name != made.api_name] + [made]
        return fields

    def new_customer(self, given: CustomerInput) -> Customer:
        """A customer to be created on payment (the id is given then), without custom fields:
        the hosted page's customer has none (set them later through ``PUT /customers``)."""
        return Customer(
            customer_id="",
            display_name=given.display_name,
            first_name=given.first_name,
            last_name=given.last_name,
            email=given.email,
            company_name=given.company_name,
            created_time="",
        )

    def custom_field(self, given: CustomFieldInput) -> CustomField:
        """A field named by its label; zuid and zgid are the organisation's defined fields."""
        label = given.label.strip()
        if label.lower() in KNOWN_CUSTOMER_FIELDS:
            label = label.lower()
            field_id = KNOWN_CUSTOMER_FIELDS[label]
        else:
            field_id = next(self._field_ids)
        api_name = "cf_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        value = "" if given.value is None else str(given.value)
        return CustomField(field_id, label, api_name, value)

    def addon_lines(self, given: list[AddonInput], plan: Plan) -> list[AddonLine]:
        lines: list[AddonLine] = []
        for item in given:
            addon = self.addon(item.addon_code)
            if any(line.addon.addon_code == addon.addon_code for line in lines):
                raise invalid(f"The add-on {addon.addon_code} is listed twice.")
            if item.quantity > 0:  # quantity 0 removes the add-on
                lines.append(AddonLine(addon, item.quantity))
        check_intervals(lines, plan)
        return lines

    def resolve_change(
        self, sub: Subscription, plan_input: PlanInput | None, addons: list[AddonInput] | None
    ) -> tuple[Plan, int, list[AddonLine]]:
        """The plan, quantity and add-ons after a change; what is not given stays as it is."""
        require_changeable(sub)
        plan = self.plan(plan_input.plan_code) if plan_input is not None else sub.plan
        quantity = (plan_input.quantity if plan_input else None) or sub.quantity
        if addons is not None:
            return plan, quantity, self.addon_lines(addons, plan)
        check_intervals(sub.addons, plan)
        return plan, quantity, list(sub.addons)


def check_intervals(lines: list[AddonLine], plan: Plan) -> None:
    for line in lines:
        if line.addon.months != plan.months:
            raise invalid(
                f"The add-on {line.addon.addon_code} is billed {line.addon.interval_unit} "
                f"but the plan {plan.plan_code} every {plan.months} month(s)."
            )


def require_changeable(sub: Subscription) -> None:
    if sub.status == "paused":
        raise not_allowed("A paused subscription cannot be changed; resume it first.")
    if sub.status not in CHANGEABLE:
        raise not_allowed(f"A {sub.status} subscription cannot be changed.")
