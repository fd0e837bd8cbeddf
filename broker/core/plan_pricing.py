"""Whether a plan change may be applied directly or must go through billing's checkout.

Pure: prices come from the catalog, in ``Decimal``. A change applied directly
(``PUT /subscriptions/{id}``) charges nobody on a page they see, so it is allowed only when the
customer plainly pays no more; everything else goes to the hosted checkout, where the customer
sees and pays billing's own figure.

The rule (docs/customer-page.md, "Changing the plan"):

- The same plan, users, storage and cycle: nothing changes (no billing call at all).
- The same billing cycle: direct when the new price per period is the same or lower.
- A change of cycle: prices are compared over the same period, a year (monthly x 12). It is
  *plainly cheaper*, and applied directly, only when the new choice costs less over a year **and**
  its charge per billing period is no larger than today's. So yearly 5 users at 500/yr -> monthly
  45 users at 450/mo (5,400/yr) goes to checkout; so does monthly -> yearly at the same users
  (cheaper over a year, but a whole year is charged at once).
- A price the catalog does not know (an old plan, a cycle no longer sold): checkout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from broker.core.catalog import Catalog
from broker.core.forms import FREQUENCIES
from broker.core.mapping import MONTHLY, YEARLY

PERIODS_PER_YEAR: Mapping[str, int] = MappingProxyType({MONTHLY: 12, YEARLY: 1})


class ChangeRoute(StrEnum):
    UNCHANGED = "unchanged"  # nothing to do
    DIRECT = "direct"  # billing applies it at once (PUT), with any credit it owes
    CHECKOUT = "checkout"  # the customer confirms and pays on billing's hosted page


class ConfiguredSubscription(Protocol):
    """What ``Configuration.of_subscription`` reads of the page's subscription view."""

    @property
    def planid(self) -> str | None: ...
    @property
    def frequency(self) -> str | None: ...
    @property
    def users(self) -> int | None: ...
    @property
    def storage_units(self) -> int | None: ...


@dataclass(frozen=True)
class Configuration:
    """What a subscription is made of, as the plan form offers it."""

    planid: str
    frequency: str  # "1" monthly, "4" yearly
    users: int
    storage: int

    @classmethod
    def of_subscription(cls, view: ConfiguredSubscription) -> Configuration | None:
        """The configuration of a subscription as the page reads it; None when not known."""
        if not view.planid or not view.frequency:
            return None
        return cls(view.planid, view.frequency, view.users or 0, view.storage_units or 0)

    @classmethod
    def of_form(cls, form: Mapping[str, str]) -> Configuration | None:
        """The configuration a posted plan form names, read literally (None when it does not
        read as one): lets an unchanged form be recognised before the catalog is read."""
        planid = form.get("planid", "").strip()
        frequency = FREQUENCIES.get(form.get("frequency", "").strip())
        users = form.get("users", "").strip()
        storage = form.get("storage", "").strip() or "0"
        if not planid or frequency is None or not (users + storage).isascii():
            return None
        if not users.isdigit() or not storage.isdigit():
            return None
        return cls(planid, frequency, int(users), int(storage))


@dataclass(frozen=True)
class ChangeDecision:
    route: ChangeRoute
    reason: str
    old_yearly: Decimal | None = None
    new_yearly: Decimal | None = None


def period_price(catalog: Catalog, config: Configuration) -> Decimal | None:
    """What one billing period of ``config`` costs (users and storage as priced)."""
    return catalog.total(config.planid, config.frequency, config.users, config.storage)


def yearly_cost(catalog: Catalog, config: Configuration) -> Decimal | None:
    """What a year of ``config`` costs, so choices on different cycles can be compared."""
    price = period_price(catalog, config)
    periods = PERIODS_PER_YEAR.get(config.frequency)
    if price is None or periods is None:
        return None
    return price * periods


def route_change(
    catalog: Catalog, current: Configuration | None, wanted: Configuration
) -> ChangeDecision:
    """How to get from ``current`` to ``wanted`` (see the module docstring for the rule)."""
    if current == wanted:
        return ChangeDecision(ChangeRoute.UNCHANGED, "the same plan, users, storage and cycle")
    if current is None:
        return ChangeDecision(ChangeRoute.CHECKOUT, "the current plan is not known")
    old_price, new_price = period_price(catalog, current), period_price(catalog, wanted)
    old_year, new_year = yearly_cost(catalog, current), yearly_cost(catalog, wanted)
    if old_price is None or new_price is None or old_year is None or new_year is None:
        return ChangeDecision(ChangeRoute.CHECKOUT, "a price is not in the catalog")
    if current.frequency == wanted.frequency:
        if new_price <= old_price:
            return ChangeDecision(ChangeRoute.DIRECT, "costs no more", old_year, new_year)
        return ChangeDecision(ChangeRoute.CHECKOUT, "costs more", old_year, new_year)
    if new_year < old_year and new_price <= old_price:
        return ChangeDecision(
            ChangeRoute.DIRECT, "new cycle, plainly cheaper over a year", old_year, new_year
        )
    return ChangeDecision(
        ChangeRoute.CHECKOUT, "new cycle, not plainly cheaper over a year", old_year, new_year
    )
