"""Where billing keeps an org's zuid and zgid, by the means Zoho documents: custom fields named
by ``label`` with a ``value``.

Two places (docs/contracts.md §4): the subscription's ``custom_fields`` on the hosted page
request (specs/hosted-pages.yml ``create-a-subscription-request``), and the customer's
``custom_fields`` through ``PUT /customers/{customer_id}`` (specs/customers.yml
``update-a-customer-request``). The hosted page's ``customer`` object documents no custom fields,
so nothing is sent there. Pure: the calls are the billing client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.core.billing_events import BillingCustomer, BillingSubscription
from broker.core.identity import identity_from_billing

# The labels the vendor gives the fields in billing (docs/zoho-setup.md, step 1).
ZUID_LABEL, ZGID_LABEL = "zuid", "zgid"


@dataclass(frozen=True)
class Correlation:
    """The ids one org's subscription must carry in billing."""

    zuid: str
    zgid: str

    def custom_fields(self) -> list[dict[str, str]]:
        """As the documents name a custom field in a request: ``label`` and ``value``."""
        return [
            {"label": ZUID_LABEL, "value": self.zuid},
            {"label": ZGID_LABEL, "value": self.zgid},
        ]

    def missing_from(self, customer: BillingCustomer | Mapping[str, object]) -> list[str]:
        """Which of zuid / zgid the customer does not carry with our value."""
        parsed = _read(customer)
        # Read exactly as webhooks are read, so "kept" means a later webhook will find them.
        found = identity_from_billing(
            BillingSubscription(subscription_id="0", status="live", customer=parsed)
        )
        return [
            name
            for name, want, have in (
                ("zuid", self.zuid, found.zuid),
                ("zgid", self.zgid, found.zgid),
            )
            if have != want
        ]


def customer_update(
    customer: BillingCustomer | Mapping[str, object], correlation: Correlation
) -> dict[str, object]:
    """The ``PUT /customers/{id}`` body that sets the fields and keeps the customer as it is:
    ``display_name`` and ``email`` are required there, so they are sent back unchanged."""
    parsed = _read(customer)
    return {
        "display_name": parsed.display_name or "",
        "email": parsed.email or "",
        "custom_fields": correlation.custom_fields(),
    }


def _read(customer: BillingCustomer | Mapping[str, object]) -> BillingCustomer:
    """The customer as the model reads it, whether the client handed over the document or
    the model already."""
    if isinstance(customer, BillingCustomer):
        return customer
    return BillingCustomer.model_validate(customer)
