"""Learning the app's billing product from billing's plans, when no setting names it.

Asked only for a subscription whose plan code does not map while nothing is known yet, so the
usual webhook never waits on billing. Billing being away leaves the product unknown, which the
pipeline treats as "unmapped" (the vendor is told) rather than dropping a paying customer.
"""

from __future__ import annotations

from functools import partial

import structlog

from broker.clients.billing import BillingClient
from broker.config import Settings
from broker.core.billing_events import BillingSubscription
from broker.core.catalog import products_of_mapped_plans
from broker.core.mapping import parse_plan_code
from broker.errors import BillingError
from broker.store.engine.backend import StoreBackend
from broker.store.products import learned_products, save_learned_products

log = structlog.get_logger(__name__)


def needs_product(subscription: BillingSubscription | None, settings: Settings) -> bool:
    """Whether telling this subscription's owner apart calls for the app's product."""
    if subscription is None or subscription.plan is None or settings.platform.product_id:
        return False
    return parse_plan_code(subscription.plan.plan_code, settings.platform.app_domain) is None


async def learn_products(
    billing: BillingClient, store: StoreBackend, *, settings: Settings, now: float
) -> frozenset[str]:
    """The learned products, reading billing's plans when none is stored yet."""
    known = await store.read(learned_products)
    if known:
        return known
    try:
        plans = await billing.list_plans()
    except BillingError as exc:
        log.warning("billing_product.unknown", reason="billing could not list plans", code=exc.code)
        return frozenset()
    found = products_of_mapped_plans(plans, app_domain=settings.platform.app_domain)
    if not found:
        log.warning("billing_product.unknown", reason="no billing plan maps to the app domain")
        return frozenset()
    await store.write(partial(save_learned_products, products=found, now=now))
    log.info("billing_product.learned", product_ids=sorted(found))
    return frozenset(found)
