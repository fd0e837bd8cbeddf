"""What the broker knows of one org's billing side: its customers (the index kept from webhooks,
billing reads and the customer sweep, by ``cf_zgid``) and its subscriptions that bill. Reads for
the look-up before selling and the conflict rule; the customer index's one write."""

from __future__ import annotations

from broker.core.billing_events import BillingSubscription
from broker.core.identity import CustomerRecord
from broker.core.mapping import PlatformState
from broker.core.org_billing import OrgSubscription, bills
from broker.store.engine.tx import Tx
from broker.store.identity import customer_row, save_customer
from broker.store.sql import select_all, text_or_none


def org_customer_ids(db: Tx, zgid: str) -> list[str]:
    """Billing customers of org ``zgid``: by their ``cf_zgid``, or named by its subscriptions."""
    rows = select_all(
        db,
        "SELECT customer_id FROM customers WHERE zgid = ?"
        " UNION SELECT customer_id FROM subscriptions WHERE zgid = ? AND customer_id IS NOT NULL"
        " ORDER BY customer_id",
        [zgid, zgid],
    )
    return [str(r["customer_id"]) for r in rows]


def email_only_customer_ids(db: Tx, email: str, zgid: str) -> list[str]:
    """Customers with this email that name no org (or another): a hint, never evidence."""
    rows = select_all(
        db,
        "SELECT customer_id FROM customers WHERE lower(email) = ? AND (zgid IS NULL OR zgid <> ?)"
        " ORDER BY customer_id",
        [email.strip().lower(), zgid],
    )
    return [str(r["customer_id"]) for r in rows]


def indexed_customer_ids(db: Tx) -> set[str]:
    """Customers whose org the index already knows (a sweep need not read them again)."""
    rows = select_all(db, "SELECT customer_id FROM customers WHERE zgid IS NOT NULL", [])
    return {str(r["customer_id"]) for r in rows}


def index_customer(db: Tx, record: CustomerRecord) -> None:
    """Keep a customer read from billing, never erasing an id the broker already knew."""
    known = customer_row(db, record.customer_id)
    if known is not None:
        record = CustomerRecord(
            customer_id=record.customer_id,
            zgid=record.zgid or known.zgid,
            zuid=record.zuid or known.zuid,
            email=record.email or known.email,
            display_name=record.display_name or known.display_name,
            updated_at=record.updated_at,
        )
    save_customer(db, record)


def org_billing_subscriptions(db: Tx, zgid: str, *, other_than: str) -> tuple[OrgSubscription, ...]:
    """Org ``zgid``'s stored subscriptions that bill, except ``other_than``, for the conflict
    rule (the org as billing's ``cf_zgid`` or a believed claim says)."""
    rows = select_all(
        db,
        "SELECT s.subscription_id, s.status, s.billing_json, s.queued_json, s.acked_json"
        " FROM subscriptions s LEFT JOIN customers c ON c.customer_id = s.customer_id"
        " WHERE (s.zgid = ? OR c.zgid = ?) AND s.subscription_id <> ?"
        " ORDER BY s.subscription_id",
        [zgid, zgid, other_than],
    )
    found = []
    for row in rows:
        if not bills(text_or_none(row, "status")):
            continue
        billing_json = text_or_none(row, "billing_json")
        snapshot = BillingSubscription.model_validate_json(billing_json) if billing_json else None
        created = snapshot.created_time if snapshot else None
        held = [
            PlatformState.from_json(text_or_none(row, k)) for k in ("queued_json", "acked_json")
        ]
        found.append(
            OrgSubscription(
                str(row["subscription_id"]),
                created.timestamp() if created else None,
                platform_has=any(s is not None and s.active for s in held),
            )
        )
    return tuple(found)
