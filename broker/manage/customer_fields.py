"""After a paid new-subscription checkout, the billing customer is given the org's zuid and zgid
(``PUT /customers/{id}``, documented) and read back, so the customer carries them for every later
subscription and webhook, not only the subscription the checkout made.

Best effort: the subscription already carries both (its ``custom_fields`` on the hosted page
request), so a failure here is logged with what to do and never spoils the return page.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from broker.core.correlation import Correlation, customer_update
from broker.errors import BillingError
from broker.manage.sessions import Session
from broker.web.appkeys import billing_client_key

log = structlog.get_logger(__name__)

SETUP_HINT = (
    "define the customer custom fields labelled zuid and zgid in Zoho Billing "
    "(docs/zoho-setup.md, step 1)"
)


async def keep_on_customer(app: web.Application, customer_id: str, session: Session) -> bool:
    """True when billing's customer carries both ids afterwards (read back, not assumed)."""
    client = app[billing_client_key]
    correlation = Correlation(zuid=session.zuid, zgid=session.zgid)
    try:
        customer = await client.get_customer(customer_id)
        if not correlation.missing_from(customer):
            return True
        await client.update_customer(customer_id, customer_update(customer, correlation))
        missing = correlation.missing_from(await client.get_customer(customer_id))
    except BillingError as error:
        log.warning("billing.customer_fields_failed", customer_id=customer_id, code=error.code)
        return False
    if missing:
        log.warning(
            "billing.customer_fields_not_kept",
            customer_id=customer_id,
            missing=missing,
            hint=SETUP_HINT,
        )
        return False
    log.info("billing.customer_fields_kept", customer_id=customer_id)
    return True
