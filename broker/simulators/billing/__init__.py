"""Local stand-in for Zoho Billing (docs/contracts.md §3-5), for tests and ``broker demo``.

Modules, from the edge inwards:

- ``simulator``: ``BillingSimulator``, the aiohttp app and what tests call
- ``controls``: the ``/_sim/`` routes (state, calendar, faults, dropped webhooks, backdating)
- ``faults``: down, slow, scripted errors and the per-minute request limit, before the API
- ``api`` and ``listing``: the token endpoint, the REST API under ``/billing/v1``, list filters
- ``checkout``: the hosted checkout pages a browser sees
- ``webhooks``: posting events to the broker (zapikey, signature, hold / drop / resend)
- ``lifecycle``: ``BillingState``, the one object the HTTP layer talks to, over ``ledger``
  (records, stamps, the event log), ``orders`` (validation), ``hosted`` (checkout pages),
  ``subscriptions`` (changes, pause credit, dunning) and ``days`` (what each day does)
- ``records``, ``clock``, ``ids``, ``catalog``, ``inputs``, ``errors``: data, the calendar, id
  typing, the seed catalog, request bodies, codes

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
