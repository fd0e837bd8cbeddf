"""Who is who, decided without a database: zuid, zgid, billing customer, and which source wins.

Billing data arrives authenticated, so its ``cf_zuid`` / ``cf_zgid`` custom fields win. The landing
page's parameters come from a browser: only a *verified* visit (signed link or Sign in with Zoho)
binds a user to an org for good, supplies the zgid of a billing customer that carries only
``cf_zuid``, or claims a parked subscription (when its verified email matches the billing
customer's). An unverified visit (``verify = "none"``) is recorded as such and does none of these.
The records here are the rows ``store.identity`` loads and writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from broker.config import LandingVerification
from broker.core.billing_events import BillingCustomer, BillingSubscription, CustomField
from broker.core.ids import is_user_id
from broker.core.landing import LandingParams
from broker.core.mapping import Identity
from broker.errors import Forbidden

OTHER_ORG_HINT = "open the Manage Subscription page from your own organisation's app"


@dataclass(frozen=True)
class CustomerRecord:
    """A billing customer's ids and contact, as the broker last knew them."""

    customer_id: str
    zgid: str | None
    zuid: str | None
    email: str | None
    display_name: str | None
    updated_at: float


@dataclass(frozen=True)
class UserRecord:
    """A Manage Subscription visitor and the org their visits bound them to."""

    zuid: str
    zgid: str
    email: str | None
    display_name: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    first_seen_at: float
    last_seen_at: float
    verified_by: str | None
    # Sign in with Zoho: what proved the zgid (``core.zgid_evidence.ZgidEvidence``); None for a
    # signed or unverified visit, and for zoho-mode bindings made before evidence was required.
    zgid_evidence: str | None = None

    @property
    def verified(self) -> bool:
        return is_verified(self.verified_by)


@dataclass(frozen=True)
class Claim:
    """A verified visitor named this subscription as their org's; believed only once billing
    can vouch for it (``believed_claim``)."""

    subscription_id: str
    zgid: str
    zuid: str
    email: str | None
    claimed_at: float
    verified_by: str | None


def is_verified(verified_by: LandingVerification | str | None) -> bool:
    return verified_by in (LandingVerification.SIGNED, LandingVerification.ZOHO)


def identity_from_billing(subscription: BillingSubscription) -> Identity:
    """Read cf_zuid / cf_zgid from billing, first found wins: the customer's then the
    subscription's ``custom_fields`` lists, then the customer's ``custom_field_hash``, the flat
    ``cf_*`` keys on the customer (Zoho's list and workflow payloads), and the subscription's
    ``custom_field_hash``. In a hash the ``_unformatted`` value is preferred."""
    field_lists: list[list[CustomField]] = [subscription.custom_fields]
    hashes: list[Mapping[str, object]] = []
    if subscription.customer is not None:
        field_lists.insert(0, subscription.customer.custom_fields)
        hashes += [subscription.customer.custom_field_hash, subscription.customer.model_extra or {}]
    hashes.append(subscription.custom_field_hash)
    return _identity_in(field_lists, hashes)


def identity_from_customer(customer: BillingCustomer) -> Identity:
    """cf_zuid / cf_zgid as a billing customer read on its own carries them (the same reading
    as ``identity_from_billing``)."""
    hashes: list[Mapping[str, object]] = [customer.custom_field_hash, customer.model_extra or {}]
    return _identity_in([customer.custom_fields], hashes)


def _identity_in(
    field_lists: Sequence[Sequence[CustomField]], hashes: Sequence[Mapping[str, object]]
) -> Identity:
    found: dict[str, str] = {}
    for name in ("zuid", "zgid"):
        for fields in field_lists:
            for custom_field in fields:
                labels = {(custom_field.label or "").lower(), (custom_field.api_name or "").lower()}
                value = _id_text(custom_field.value)
                if value and labels & {name, f"cf_{name}"}:
                    found.setdefault(name, value)
        for values in hashes:
            for key in (f"cf_{name}_unformatted", f"cf_{name}"):
                value = _id_text(values.get(key))
                if value:
                    found.setdefault(name, value)
    return Identity(found.get("zuid"), found.get("zgid"))


def resolve_identity(
    snapshot: BillingSubscription | None,
    customer: CustomerRecord | None,
    bound: Identity,
    binding: UserRecord | None,
) -> Identity:
    """Billing's ids first (authenticated), then the customer's, then a believed claim
    (``bound``: the subscription's own zgid/zuid), then, for a zuid billing gave without a
    zgid, that user's verified binding."""
    from_billing = identity_from_billing(snapshot) if snapshot else Identity()
    zuid = from_billing.zuid or (customer.zuid if customer else None) or bound.zuid
    zgid = from_billing.zgid or (customer.zgid if customer else None) or bound.zgid
    if zuid and not zgid and binding is not None and binding.zuid == zuid and binding.verified:
        zgid = binding.zgid
    return Identity(zuid, zgid)


def merged_customer(
    subscription: BillingSubscription, existing: CustomerRecord | None, now: float
) -> CustomerRecord | None:
    """The customer row a snapshot leaves: billing's ids and contact, never erasing what we
    knew. None when the snapshot names no customer."""
    customer_id = subscription.effective_customer_id()
    if not customer_id:
        return None
    identity = identity_from_billing(subscription)
    customer = subscription.customer
    return CustomerRecord(
        customer_id=customer_id,
        zuid=identity.zuid or (existing.zuid if existing else None),
        zgid=identity.zgid or (existing.zgid if existing else None),
        email=(customer.email if customer else None) or (existing.email if existing else None),
        display_name=(customer.display_name if customer else None)
        or (existing.display_name if existing else None),
        updated_at=now,
    )


def bind_user(
    existing: UserRecord | None,
    params: LandingParams,
    verified_by: LandingVerification,
    now: float,
    zgid_evidence: str | None = None,
) -> UserRecord:
    """The visitor's row after this visit. A zuid seen with one zgid may never act for another,
    except that a verified visit replaces a binding only an unverified one made. A Sign in with
    Zoho visit passes what proved its zgid (``zgid_evidence``); it is kept until replaced."""
    verified = is_verified(verified_by)
    replaces_unverified = verified and existing is not None and not existing.verified
    # A zoho-mode binding made before evidence was required proved nothing: evidence wins.
    replaces_unproven = (
        zgid_evidence is not None
        and existing is not None
        and existing.verified_by == LandingVerification.ZOHO
        and existing.zgid_evidence is None
    )
    if existing and existing.zgid != params.zgid and not (replaces_unverified or replaces_unproven):
        raise Forbidden("this user belongs to another organisation", hint=OTHER_ORG_HINT)
    kept = existing.verified_by if existing and existing.zgid == params.zgid else None
    return UserRecord(
        zuid=params.zuid,
        zgid=params.zgid,
        email=params.email,
        display_name=params.display_name,
        first_name=params.first_name,
        last_name=params.last_name,
        company_name=params.company_name,
        first_seen_at=existing.first_seen_at if existing else now,
        last_seen_at=now,
        verified_by=str(verified_by) if verified else kept,
        zgid_evidence=zgid_evidence
        or (existing.zgid_evidence if existing and existing.zgid == params.zgid else None),
    )


def believed_claim(
    claims: tuple[Claim, ...],
    billing_email: str,
    *,
    require_email_match: bool,
) -> Claim | None:
    """The claim to believe for a subscription no org owns yet, if any.

    With ``landing.require_email_match`` (the default) a claim is believed only when its email
    equals the billing customer's email, so neither a guessed id nor an early visit can take a
    subscription: wrong claims are kept but never used. Without it, the earliest claim wins.
    ``claims`` come ordered by when they were made.
    """
    verified = [c for c in claims if c.verified_by is not None]
    if require_email_match:
        verified = [c for c in verified if billing_email and c.email == billing_email]
    return verified[0] if verified else None


def billing_email(subscription: BillingSubscription, customer: CustomerRecord | None) -> str:
    email = subscription.customer.email if subscription.customer else None
    return (email or (customer.email if customer else None) or "").strip().lower()


def _id_text(value: object) -> str | None:
    """A zuid/zgid from a custom field, or None: ASCII digits only (it reaches a platform URL).
    A value may be any JSON (a multi-select's list, a lookup's object): only a string or an
    integer can be an id."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if is_user_id(text) else None
