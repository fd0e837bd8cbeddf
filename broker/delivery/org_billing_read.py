"""Which subscriptions org ``zgid`` has in billing, read live: the one bounded look-up the page
(before selling) and the operator console (the org view) share.

The org's billing customers come from the customer index (by ``cf_zgid``), swept from billing
for an org the index does not know (``customer_index.CustomerSweep``, itself bounded); then
``GET /subscriptions?customer_id=`` for at most ``MAX_CUSTOMERS`` of them. Billing errors
propagate: a caller that cannot ask billing must say so, never guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from broker.clients.billing import BillingClient
from broker.core.billing_status import BillingStatus, UnknownStatus
from broker.core.org_billing import bills
from broker.delivery.customer_index import CustomerSweep
from broker.store.engine.backend import StoreBackend
from broker.store.org_index import org_customer_ids

MAX_CUSTOMERS = 2  # an org's billing customers whose subscriptions one look-up lists


@dataclass(frozen=True)
class BilledSubscription:
    """One subscription as billing's list shows it (a list item: no plan object)."""

    subscription_id: str
    status: BillingStatus | UnknownStatus
    customer_id: str
    plan_code: str | None
    created_time: str | None

    @property
    def bills(self) -> bool:
        return bills(self.status)


@dataclass(frozen=True)
class OrgInBilling:
    """What billing holds for the org: its customers (all the index knows) and the
    subscriptions of the first ``MAX_CUSTOMERS``, those that bill first."""

    customer_ids: tuple[str, ...]
    subscriptions: tuple[BilledSubscription, ...]


async def read_org_in_billing(
    store: StoreBackend, client: BillingClient, sweep: CustomerSweep | None, zgid: str
) -> OrgInBilling:
    """At most one sweep (when due), then one list call per customer, ``MAX_CUSTOMERS`` at most."""
    customers = await store.read(partial(org_customer_ids, zgid=zgid))
    if not customers and sweep is not None:
        await sweep.sweep_if_due()
        customers = await store.read(partial(org_customer_ids, zgid=zgid))
    found: list[BilledSubscription] = []
    for customer_id in customers[:MAX_CUSTOMERS]:
        for item in await client.subscriptions_of_customer(customer_id):
            found.append(
                BilledSubscription(
                    item.subscription_id,
                    item.status,
                    customer_id,
                    item.plan_code or None,
                    item.created_time or None,
                )
            )
    found.sort(key=lambda s: not s.bills)  # stable: billing's order within each group
    return OrgInBilling(tuple(customers), tuple(found))
