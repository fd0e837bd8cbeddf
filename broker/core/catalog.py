"""What a customer can buy: this app domain's billing plans, grouped by Developer Console plan id.

Zoho Billing holds one plan per (plan id, frequency) — ``{app_domain}_{planid}`` and
``{app_domain}_{planid}_Y`` — and the page offers them as one plan with a monthly and a yearly
price. Pure: ``build_catalog`` reads billing's plan and add-on lists, already fetched
(``broker.clients.catalog`` fetches and caches them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from broker.config import PlansSettings
from broker.core.billing_events import CatalogAddon, CatalogPlan, PlanStatus
from broker.core.mapping import MONTHLY, YEARLY, parse_plan_code


@dataclass
class PlanChoice:
    planid: str
    name: str
    codes: dict[str, str] = field(default_factory=dict)  # frequency "1"/"4" -> plan code
    prices: dict[str, Decimal] = field(default_factory=dict)  # frequency -> price per user

    @property
    def free(self) -> bool:
        return bool(self.prices) and all(price == 0 for price in self.prices.values())


@dataclass(frozen=True)
class Catalog:
    plans: list[PlanChoice]
    storage_codes: dict[str, str]  # frequency -> storage add-on code
    storage_prices: dict[str, Decimal]

    def plan(self, planid: str) -> PlanChoice | None:
        return next((p for p in self.plans if p.planid == planid), None)

    def total(self, planid: str, frequency: str, users: int, storage_units: int) -> Decimal | None:
        """Recurring price of a configuration, or None if it is not on sale."""
        plan = self.plan(planid)
        if plan is None or frequency not in plan.prices:
            return None
        storage = self.storage_prices.get(frequency, Decimal(0)) * storage_units
        return plan.prices[frequency] * users + storage


def build_catalog(
    plans: list[CatalogPlan],
    addons: list[CatalogAddon],
    *,
    app_domain: str,
    plan_settings: PlansSettings,
) -> Catalog:
    choices: dict[str, PlanChoice] = {}
    for plan in plans:
        code = plan.plan_code
        ref = parse_plan_code(code, app_domain)
        if ref is None or plan.status is not PlanStatus.ACTIVE:
            continue
        choice = choices.setdefault(
            ref.planid, PlanChoice(ref.planid, _base_name(plan, ref.planid))
        )
        choice.codes[ref.frequency] = code
        choice.prices[ref.frequency] = plan.period_price()
        if ref.frequency == MONTHLY:
            choice.name = _base_name(plan, ref.planid)
    storage_codes = {
        frequency: code
        for frequency, code in (
            (MONTHLY, plan_settings.storage_addon_monthly),
            (YEARLY, plan_settings.storage_addon_yearly),
        )
        if code
    }
    storage_prices = {}
    for addon in addons:
        for frequency, code in storage_codes.items():
            if addon.addon_code == code:
                storage_prices[frequency] = addon.unit_price()
    ordered = sorted(choices.values(), key=lambda p: (min(p.prices.values(), default=0), p.name))
    return Catalog(ordered, storage_codes, storage_prices)


def _base_name(plan: CatalogPlan, planid: str) -> str:
    name = plan.name or planid
    return name.removesuffix(" (yearly)").removesuffix(" (Yearly)")


def products_of_mapped_plans(plans: list[CatalogPlan], *, app_domain: str) -> dict[str, str]:
    """The products of billing's plans whose codes map (docs/contracts.md §4: a plan carries
    ``product_id``), each with one such plan code."""
    found: dict[str, str] = {}
    for plan in plans:
        if parse_plan_code(plan.plan_code, app_domain) is not None and plan.product_id:
            found.setdefault(plan.product_id, plan.plan_code)
    return found
