"""The plans and add-ons the simulated organisation sells, loaded from a JSON seed file.

Codes in the file may hold ``{app_domain}``, replaced at load time, so one file serves every
vendor app. Prices are read as ``Decimal`` straight from the JSON text: money never passes
through float here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CATALOG_FILE = Path(__file__).resolve().parent.parent / "billing_catalog.json"


def money(value: Decimal) -> float:
    """Zoho answers amounts as JSON numbers; cents survive the trip through float."""
    return float(value)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Plan(_Entry):
    plan_code: str = Field(min_length=1)
    plan_id: str = Field(pattern=r"^[0-9]+$")
    name: str
    recurring_price: Decimal = Field(ge=0)
    interval: int = Field(1, ge=1)
    interval_unit: Literal["months", "years"]
    trial_period: int = Field(0, ge=0)
    status: Literal["active", "inactive"] = "active"
    product_id: str = ""

    @property
    def months(self) -> int:
        return self.interval * (12 if self.interval_unit == "years" else 1)

    def to_json(self) -> dict[str, Any]:
        price = money(self.recurring_price)
        return {
            "plan_code": self.plan_code,
            "plan_id": self.plan_id,
            "name": self.name,
            "recurring_price": price,
            "price": price,
            "interval": self.interval,
            "interval_unit": self.interval_unit,
            "trial_period": self.trial_period,
            "billing_cycles": -1,
            "setup_fee": 0.0,
            "status": self.status,
            "product_id": self.product_id,
        }


class Addon(_Entry):
    addon_code: str = Field(min_length=1)
    addon_id: str = Field(pattern=r"^[0-9]+$")
    name: str
    price: Decimal = Field(ge=0)
    interval_unit: Literal["monthly", "yearly"]  # Zoho spells add-on intervals this way
    unit_name: str = "unit"
    status: Literal["active", "inactive"] = "active"
    product_id: str = ""

    @property
    def months(self) -> int:
        return 12 if self.interval_unit == "yearly" else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "addon_code": self.addon_code,
            "addon_id": self.addon_id,
            "name": self.name,
            "unit_name": self.unit_name,
            "pricing_scheme": "unit",
            "price_brackets": [{"start_quantity": 1, "price": money(self.price)}],
            "price": money(self.price),
            "type": "recurring",
            "interval_unit": self.interval_unit,
            "status": self.status,
            "product_id": self.product_id,
        }


class _Product(_Entry):
    product_id: str = Field(pattern=r"^[0-9]+$")
    name: str


class _CatalogFile(_Entry):
    product: _Product
    plans: list[dict[str, Any]]
    addons: list[dict[str, Any]]


class Catalog:
    def __init__(self, product_id: str, plans: list[Plan], addons: list[Addon]) -> None:
        self.product_id = product_id
        self.plans = {plan.plan_code: plan for plan in plans}
        self.addons = {addon.addon_code: addon for addon in addons}


def load_catalog(app_domain: str, path: Path | None = None) -> Catalog:
    """Read the seed file, put ``app_domain`` into every string and validate each entry."""
    source = path or DEFAULT_CATALOG_FILE
    document = _fill(json.loads(source.read_text("utf-8"), parse_float=Decimal), app_domain)
    parsed = _CatalogFile.model_validate(document)
    product_id = parsed.product.product_id
    plans = [Plan.model_validate({"product_id": product_id, **entry}) for entry in parsed.plans]
    addons = [Addon.model_validate({"product_id": product_id, **entry}) for entry in parsed.addons]
    return Catalog(product_id, plans, addons)


def _fill(value: Any, app_domain: str) -> Any:
    if isinstance(value, str):
        return value.replace("{app_domain}", app_domain)
    if isinstance(value, list):
        return [_fill(item, app_domain) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, app_domain) for key, item in value.items()}
    return value
