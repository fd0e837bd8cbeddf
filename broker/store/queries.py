"""Read models: what the page and the operator see. Read-only; runs on the store's reader thread."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from broker.config import Settings
from broker.core.billing_events import BillingSubscription
from broker.core.decide import StoredSubscription
from broker.core.identity import resolve_identity
from broker.core.mapping import (
    ENDED_STATUSES,
    Identity,
    PlatformState,
    parked_for_quantity,
    parse_plan_code,
    storage_units,
)
from broker.core.money import parse_amount
from broker.core.ours import Ownership, our_products, ownership
from broker.core.subscription_state import SubscriptionState
from broker.store.engine.tx import Tx
from broker.store.identity import columns, customer_row, user_row
from broker.store.outbox import DeliveryState
from broker.store.products import learned_products
from broker.store.sql import as_record, select_all, select_one, text

CYCLES = {"months": "Monthly", "years": "Yearly"}
UNMAPPED_SYNC = "unmapped"
MISSING_SYNC = "missing"
MISSING_TEXT = "Not found in billing; contact the vendor"


@dataclass(frozen=True)
class SubscriptionView:
    """One subscription as the Manage Subscription page shows it and its actions read it."""

    subscription_id: str
    status: str | None
    ended: bool
    plan_code: str | None
    planid: str | None
    frequency: str | None  # "1" monthly, "4" yearly
    plan_name: str | None
    users: int | None
    storage_units: int | None
    cycle: str | None  # "Monthly" | "Yearly"
    term_starts_at: str | None
    term_ends_at: str | None
    next_billing_at: str | None
    amount: Decimal | None  # None when billing's amount is not readable
    currency_code: str | None
    owner_zuid: str | None
    customer_id: str | None
    sync_state: str  # missing | unmapped | parked | conflict | dead | pending | ok | none
    sync_text: str
    # While paused: the day billing resumes it (``resume_date``, docs/contracts.md §4 [unsure]).
    resumes_on: str | None = None
    # Billing answered 404 for it while the broker held it as billing (``billing_missing``).
    missing_in_billing: bool = False

    @property
    def unmapped(self) -> bool:
        """Its plan code maps to no plan of the app: it is not live in the app, whatever billing
        says, and the vendor has been told (the ``unmapped_plan`` outcome)."""
        return self.sync_state == UNMAPPED_SYNC


def org_subscriptions(db: Tx, zgid: str, settings: Settings) -> list[SubscriptionView]:
    """Subscriptions whose owner, as the broker best knows it, is org ``zgid``."""
    rows = select_all(
        db,
        f"""
        SELECT {columns(StoredSubscription, "s")} FROM subscriptions s
        LEFT JOIN customers c ON c.customer_id = s.customer_id
        WHERE s.zgid = :zgid OR c.zgid = :zgid OR (c.zgid IS NULL AND c.zuid IN
            (SELECT zuid FROM users WHERE zgid = :zgid AND verified_by IS NOT NULL))
        ORDER BY s.updated_at DESC
        """,  # noqa: S608 - the column names are ours
        {"zgid": zgid},
    )
    views = []
    products = our_products(settings.platform.product_id, learned_products(db))
    for row in rows:
        stored = as_record(StoredSubscription, row)
        billing = stored.snapshot
        if _other_product(billing, settings.platform.app_domain, products):
            continue  # another billing product's: not this app's page to show
        owner = _owner(db, stored, billing)
        # Only billing's word or a verified claim makes an org the owner (never a mere visit).
        if owner.zgid != zgid:
            continue
        views.append(_subscription_view(db, stored, billing, owner, settings))
    return views


def _other_product(
    billing: BillingSubscription | None, app_domain: str, products: frozenset[str]
) -> bool:
    """Whether the pipeline's rule (``core.ours``) calls this subscription another product's."""
    if billing is None or billing.plan is None:
        return False
    owner = ownership(
        plan_maps=parse_plan_code(billing.plan.plan_code, app_domain) is not None,
        product_id=billing.effective_product_id(),
        our_products=products,
    )
    return owner is Ownership.OTHER_PRODUCT


def _owner(db: Tx, stored: StoredSubscription, billing: BillingSubscription | None) -> Identity:
    customer = customer_row(db, stored.customer_id)
    zuid = resolve_identity(billing, customer, stored.bound, None).zuid
    binding = user_row(db, zuid) if zuid else None
    return resolve_identity(billing, customer, stored.bound, binding)


def _subscription_view(
    db: Tx,
    stored: StoredSubscription,
    billing: BillingSubscription | None,
    owner: Identity,
    settings: Settings,
) -> SubscriptionView:
    extra = (billing.model_extra or {}) if billing else {}
    latest = select_one(
        db,
        "SELECT state FROM deliveries WHERE subscription_id = ? ORDER BY id DESC LIMIT 1",
        [stored.subscription_id],
    )
    missing = select_one(
        db,
        "SELECT state FROM billing_missing WHERE subscription_id = ?",
        [stored.subscription_id],
    )
    sync_state, sync_text = _sync(
        stored,
        PlatformState.from_json(stored.acked_json),
        PlatformState.from_json(stored.queued_json),
        text(latest, "state") if latest else None,
    )
    plan = billing.plan if billing else None
    plan_ref = parse_plan_code(plan.plan_code, settings.platform.app_domain) if plan else None
    return SubscriptionView(
        subscription_id=stored.subscription_id,
        status=stored.status,
        ended=(stored.status or "") in ENDED_STATUSES,
        plan_code=stored.plan_code,
        planid=plan_ref.planid if plan_ref else None,
        frequency=plan_ref.frequency if plan_ref else None,
        plan_name=plan.name if plan else None,
        users=plan.quantity if plan else None,
        storage_units=storage_units(billing, settings.plans) if billing else None,
        cycle=CYCLES.get((billing.interval_unit or "").lower()) if billing else None,
        term_starts_at=_text(extra.get("current_term_starts_at")),
        term_ends_at=billing.current_term_ends_at if billing else None,
        next_billing_at=billing.next_billing_at if billing else None,
        resumes_on=_text(extra.get("resume_date")) if stored.status == "paused" else None,
        amount=parse_amount(extra.get("amount")),
        currency_code=_text(extra.get("currency_code")),
        owner_zuid=owner.zuid,
        customer_id=stored.customer_id,
        sync_state=MISSING_SYNC if missing else sync_state,
        sync_text=MISSING_TEXT if missing else sync_text,
        missing_in_billing=missing is not None,
    )


def _sync(
    stored: StoredSubscription,
    acked: PlatformState | None,
    queued: PlatformState | None,
    latest_delivery: str | None,
) -> tuple[str, str]:
    if stored.state is SubscriptionState.UNMAPPED_PLAN:
        return UNMAPPED_SYNC, (
            "Not in the app: this plan is not set up for the app. The vendor has been told"
        )
    if stored.parked_reason and parked_for_quantity(stored.parked_reason):
        return "parked", "Not sent to the app: its number of users is below what the app accepts"
    if stored.parked_reason:
        return "parked", "Waiting: the app does not know your organisation yet"
    if stored.state is SubscriptionState.CONFLICT:
        return "conflict", "Not in the app: your organisation's other subscription is"
    if latest_delivery == DeliveryState.DEAD:
        return "dead", "The app could not be updated; the vendor has been alerted"
    if latest_delivery in (DeliveryState.PENDING, DeliveryState.IN_FLIGHT):
        return "pending", "The app is being updated"
    if queued is not None and queued == acked:
        return "ok", "Up to date"
    return "none", "Not sent to the app"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def org_claimed_subscription_ids(db: Tx, zgid: str) -> list[str]:
    """Subscriptions this org's users named on a visit that billing has not described yet."""
    rows = select_all(
        db,
        "SELECT c.subscription_id FROM landing_claims c LEFT JOIN subscriptions s"
        " ON s.subscription_id = c.subscription_id"
        " WHERE c.zgid = ? AND (s.subscription_id IS NULL OR s.billing_json IS NULL)",
        [zgid],
    )
    return [text(row, "subscription_id") for row in rows]


def org_updated_at(db: Tx, zgid: str) -> float | None:
    """When the broker last updated any of the org's subscriptions (as ``org_subscriptions``
    finds them): how old a stored page is."""
    row = db.select_one(
        """
        SELECT MAX(s.updated_at) AS at FROM subscriptions s
        LEFT JOIN customers c ON c.customer_id = s.customer_id
        WHERE s.zgid = :zgid OR c.zgid = :zgid OR (c.zgid IS NULL AND c.zuid IN
            (SELECT zuid FROM users WHERE zgid = :zgid AND verified_by IS NOT NULL))
        """,
        {"zgid": zgid},
    )
    return None if row is None or row["at"] is None else float(row["at"])
