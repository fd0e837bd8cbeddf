"""Who is who: zuid, zgid, billing customer and subscription, and which source we believe.

Billing data arrives authenticated, so its ``cf_zuid`` / ``cf_zgid`` custom fields win. The landing
page's parameters come from a browser: only a *verified* visit (signed link or Sign in with Zoho)
binds a user to an org for good, supplies the zgid of a billing customer that carries only
``cf_zuid``, or claims a parked subscription (when its verified email matches the billing
customer's). An unverified visit (``verify = "none"``) is recorded as such and does none of these.
Functions here run inside store transactions.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from broker.config import LandingVerification, Settings
from broker.core.billing_events import BillingSubscription, CustomField
from broker.core.ids import is_user_id
from broker.core.landing import LandingParams
from broker.core.mapping import Identity
from broker.errors import Forbidden
from broker.store.sql import select_all, select_one, upsert


def identity_from_billing(subscription: BillingSubscription) -> Identity:
    """Read cf_zuid / cf_zgid from the customer's or the subscription's custom fields."""
    field_lists: list[list[CustomField]] = [subscription.custom_fields]
    hashes: list[dict[str, Any]] = []
    if subscription.customer is not None:
        field_lists.insert(0, subscription.customer.custom_fields)
        hashes.append(subscription.customer.custom_field_hash)
    found: dict[str, str] = {}
    for name in ("zuid", "zgid"):
        for fields in field_lists:
            for custom_field in fields:
                labels = {(custom_field.label or "").lower(), (custom_field.api_name or "").lower()}
                value = _id_text(custom_field.value)
                if value and labels & {name, f"cf_{name}"}:
                    found.setdefault(name, value)
        for values in hashes:
            value = _id_text(values.get(f"cf_{name}_unformatted", values.get(f"cf_{name}")))
            if value:
                found.setdefault(name, value)
    return Identity(found.get("zuid"), found.get("zgid"))


def stored_snapshot(row: dict[str, Any]) -> BillingSubscription | None:
    """The billing snapshot kept on a subscriptions row, if billing has described it yet."""
    text = row["billing_json"]
    return BillingSubscription.model_validate_json(text) if text else None


def resolve_identity(
    db: sqlite_utils.Database, row: dict[str, Any], subscription: BillingSubscription | None
) -> Identity:
    """Billing's ids first (authenticated), then a verified landing claim (``promote_claim``),
    then, for a zuid billing gave without a zgid, that user's verified binding."""
    from_billing = identity_from_billing(subscription) if subscription else Identity()
    customer = customer_row(db, row["customer_id"]) or {}
    zuid = from_billing.zuid or customer.get("zuid") or row["zuid"]
    zgid = from_billing.zgid or customer.get("zgid") or row["zgid"]
    if zuid and not zgid:
        zgid = verified_zgid(db, zuid)
    return Identity(zuid, zgid)


def is_verified(verified_by: LandingVerification | str | None) -> bool:
    return verified_by in (LandingVerification.SIGNED, LandingVerification.ZOHO)


def verified_zgid(db: sqlite_utils.Database, zuid: str) -> str | None:
    """The org a verified visit bound this user to (the users table keeps it for this)."""
    user = user_row(db, zuid)
    return str(user["zgid"]) if user and is_verified(user["verified_by"]) else None


def waiting_for_zgid(db: sqlite_utils.Database, zuid: str) -> list[str]:
    """Parked subscriptions whose billing customer names this zuid but no zgid."""
    rows = select_all(
        db,
        "SELECT s.subscription_id FROM subscriptions s JOIN customers c"
        " ON c.customer_id = s.customer_id"
        " WHERE s.decision = 'parked' AND c.zuid = ? AND c.zgid IS NULL",
        [zuid],
    )
    return [str(row["subscription_id"]) for row in rows]


def owner_zgid(db: sqlite_utils.Database, row: dict[str, Any]) -> str | None:
    """The org a subscription belongs to, as far as billing or a verified claim says."""
    return resolve_identity(db, row, stored_snapshot(row)).zgid


def remember_customer(
    db: sqlite_utils.Database, subscription: BillingSubscription, now: float
) -> None:
    """Keep the billing customer's ids and contact, never erasing what we knew."""
    customer_id = subscription.effective_customer_id()
    if not customer_id:
        return
    identity = identity_from_billing(subscription)
    existing = customer_row(db, customer_id) or {}
    customer = subscription.customer
    upsert(
        db,
        "customers",
        {
            "customer_id": customer_id,
            "zuid": identity.zuid or existing.get("zuid"),
            "zgid": identity.zgid or existing.get("zgid"),
            "email": (customer.email if customer else None) or existing.get("email"),
            "display_name": (customer.display_name if customer else None)
            or existing.get("display_name"),
            "updated_at": now,
        },
        key="customer_id",
    )


def record_user(
    db: sqlite_utils.Database,
    params: LandingParams,
    now: float,
    verified_by: LandingVerification = LandingVerification.NONE,
) -> None:
    """Remember the visitor; a zuid seen with one zgid may never act for another, except that a
    verified visit replaces a binding only an unverified one made."""
    existing = user_row(db, params.zuid)
    verified = is_verified(verified_by)
    replaces_unverified = verified and existing and not is_verified(existing["verified_by"])
    if existing and existing["zgid"] != params.zgid and not replaces_unverified:
        raise Forbidden(
            "this user belongs to another organisation",
            hint="open the Manage Subscription page from your own organisation's app",
        )
    kept = existing["verified_by"] if existing and existing["zgid"] == params.zgid else None
    upsert(
        db,
        "users",
        {
            "zuid": params.zuid,
            "zgid": params.zgid,
            "email": params.email,
            "display_name": params.display_name,
            "first_name": params.first_name,
            "last_name": params.last_name,
            "company_name": params.company_name,
            "first_seen_at": existing["first_seen_at"] if existing else now,
            "last_seen_at": now,
            "verified_by": str(verified_by) if verified else kept,
        },
        key="zuid",
    )


def claim_subscription(
    db: sqlite_utils.Database,
    subscription_id: str,
    params: LandingParams,
    settings: Settings,
    now: float,
    verified_by: LandingVerification,
) -> None:
    """A verified visitor says this subscription is theirs: refuse if it is another org's, else
    record the claim and let ``promote_claim`` decide whether it is believed."""
    row = subscription_row(db, subscription_id)
    owner = owner_zgid(db, row) if row else None
    if owner and owner != params.zgid:
        raise Forbidden(
            "this subscription belongs to another organisation",
            hint="open the Manage Subscription page from your own organisation's app",
        )
    if owner:
        return
    upsert(
        db,
        "landing_claims",
        {
            "subscription_id": subscription_id,
            "zgid": params.zgid,
            "zuid": params.zuid,
            "email": (params.email or "").strip().lower() or None,
            "claimed_at": now,
            "verified_by": str(verified_by) if is_verified(verified_by) else None,
        },
        key=("subscription_id", "zgid"),
    )
    promote_claim(db, subscription_id, settings)


def promote_claim(db: sqlite_utils.Database, subscription_id: str, settings: Settings) -> bool:
    """Believe a landing claim once billing can vouch for it.

    With ``landing.require_email_match`` (the default) a claim is believed only when its email
    equals the billing customer's email, so neither a guessed id nor an early visit can take a
    subscription: wrong claims are kept but never used. Without it, the earliest claim wins.
    """
    if not unverified_claims(db, subscription_id):
        return False  # the common case, checked before any parsing
    row = subscription_row(db, subscription_id)
    billing = stored_snapshot(row) if row else None
    if row is None or billing is None or resolve_identity(db, row, billing).zgid:
        return False
    claims = select_all(
        db,
        "SELECT * FROM landing_claims WHERE subscription_id = ? AND verified_by IS NOT NULL"
        " ORDER BY claimed_at, zgid",
        [subscription_id],
    )
    if settings.landing.require_email_match:
        email = _billing_email(billing, customer_row(db, row["customer_id"]) or {})
        claims = [c for c in claims if email and c["email"] == email]
    if not claims:
        return False
    chosen = claims[0]
    db.execute(
        "UPDATE subscriptions SET zgid = ?, zuid = ?, bound_email = ? WHERE subscription_id = ?",
        [chosen["zgid"], chosen["zuid"], chosen["email"], subscription_id],
    )
    return True


def unverified_claims(db: sqlite_utils.Database, subscription_id: str) -> int:
    """Landing claims on a subscription no org owns yet (each one failed verification)."""
    rows = select_all(
        db, "SELECT COUNT(*) AS n FROM landing_claims WHERE subscription_id = ?", [subscription_id]
    )
    return int(next(iter(rows))["n"])


def subscription_row(db: sqlite_utils.Database, subscription_id: str) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM subscriptions WHERE subscription_id = ?", subscription_id)


def customer_row(db: sqlite_utils.Database, customer_id: str | None) -> dict[str, Any] | None:
    return (
        _one(db, "SELECT * FROM customers WHERE customer_id = ?", customer_id)
        if customer_id
        else None
    )


def user_row(db: sqlite_utils.Database, zuid: str) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM users WHERE zuid = ?", zuid)


def _one(db: sqlite_utils.Database, sql: str, key: str) -> dict[str, Any] | None:
    return select_one(db, sql, [key])


def _id_text(value: Any) -> str | None:
    """A zuid/zgid from a custom field, or None: ASCII digits only (it reaches a platform URL)."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text if is_user_id(text) else None


def _billing_email(subscription: BillingSubscription, customer: dict[str, Any]) -> str:
    email = subscription.customer.email if subscription.customer else None
    return (email or customer.get("email") or "").strip().lower()
