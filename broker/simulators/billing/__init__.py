"""Local stand-in for Zoho Billing (contracts.md sections 3, 4, 5), for tests and ``broker demo``.

Modules, from the edge inwards:

- ``simulator``: ``BillingSimulator``, the aiohttp app, fault script, ``/_sim/`` controls
- ``api``: the token endpoint and the REST API under ``/billing/v1``
- ``checkout``: the hosted checkout pages a browser sees
- ``webhooks``: posting events to the broker (zapikey, signature, hold / drop / resend)
- ``lifecycle``: what each action and each passing day does to the records (pure)
- ``records``, ``catalog``, ``inputs``, ``errors``: data, the seed catalog, request bodies, codes

It must never import the broker (it is the other side of the wire) and never log a secret.
"""

from .catalog import Addon, Catalog, Plan, load_catalog
from .errors import ApiError
from .lifecycle import BillingState, pause_credit
from .records import Customer, Event, HostedPage, Subscription
from .simulator import BillingSimulator
from .webhooks import SIGNATURE_HEADER, WebhookDelivery, signature

__all__ = [
    "SIGNATURE_HEADER",
    "Addon",
    "ApiError",
    "BillingSimulator",
    "BillingState",
    "Catalog",
    "Customer",
    "Event",
    "HostedPage",
    "Plan",
    "Subscription",
    "WebhookDelivery",
    "load_catalog",
    "pause_credit",
    "signature",
]
