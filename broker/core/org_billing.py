"""One org, one subscription that bills: which subscriptions count, which one the platform keeps
when billing holds two, and the customer index a billing read leaves. Pure, no I/O.

The platform holds one subscription per org (docs/contracts.md §1: the Add names the org, not
the subscription). So when billing holds two that bill for one org, the one the platform already
has stays (else the earliest ``created_time``) and nothing is sent for the other: a conflict the
owner and the operator are shown, never a second Add.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.core.billing_events import BillingCustomer
from broker.core.billing_status import BillingStatus
from broker.core.identity import CustomerRecord, identity_from_customer

# A subscription in one of these bills now or may bill later: an org that has one is never
# offered Subscribe, and two of them in one org are a conflict.
BILLING_STATUSES = frozenset(
    {
        BillingStatus.LIVE,
        BillingStatus.TRIAL,
        BillingStatus.FUTURE,
        BillingStatus.NON_RENEWING,
        BillingStatus.DUNNING,
        BillingStatus.UNPAID,
        BillingStatus.PAUSED,
    }
)


def bills(status: str | None) -> bool:
    """True for a status that bills or may bill (``BILLING_STATUSES``): a parsed one, or a
    stored column, which is written lower-cased."""
    return status in BILLING_STATUSES


@dataclass(frozen=True)
class OrgSubscription:
    """One subscription of an org as the conflict rule sees it."""

    subscription_id: str
    created_at: float | None  # billing's created_time; None when billing has not said
    platform_has: bool  # the platform acknowledged it, or an Add is queued for it


def keeper(candidates: Iterable[OrgSubscription]) -> str | None:
    """The subscription the platform keeps among one org's billing ones: one it already has
    (the earliest such), else the earliest created; ties and unknown times by id."""
    ordered = sorted(
        candidates,
        key=lambda c: (
            not c.platform_has,
            c.created_at is None,
            c.created_at or 0.0,
            c.subscription_id,
        ),
    )
    return ordered[0].subscription_id if ordered else None


def customer_record(customer: BillingCustomer | None, now: float) -> CustomerRecord | None:
    """The customer index row a ``GET /customers/{id}`` answer gives; None if it has no id."""
    if customer is None or not customer.customer_id:
        return None
    identity = identity_from_customer(customer)
    return CustomerRecord(
        customer_id=customer.customer_id,
        zgid=identity.zgid,
        zuid=identity.zuid,
        email=(customer.email or "").strip().lower() or None,
        display_name=customer.display_name,
        updated_at=now,
    )
