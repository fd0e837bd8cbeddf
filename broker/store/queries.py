"""Read models: what the page and the operator see. Read-only; runs on the store's reader thread."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from broker.config import Settings
from broker.core.billing_events import BillingSubscription
from broker.core.identity import resolve_identity
from broker.core.mapping import (
    ENDED_STATUSES,
    Identity,
    PlatformState,
    parse_plan_code,
    storage_units,
)
from broker.core.money import parse_amount
from broker.store.identity import customer_row, user_row
from broker.store.sql import select_all

CYCLES = {"months": "Monthly", "years": "Yearly"}


def org_subscriptions(
    db: sqlite_utils.Database, zgid: str, settings: Settings
) -> list[dict[str, Any]]:
    """Subscriptions whose owner, as the broker best knows it, is org ``zgid``."""
    rows = select_all(
        db,
        """
        SELECT s.*, c.zgid AS customer_zgid FROM subscriptions s
        LEFT JOIN customers c ON c.customer_id = s.customer_id
        WHERE s.zgid = :zgid OR c.zgid = :zgid OR (c.zgid IS NULL AND c.zuid IN
            (SELECT zuid FROM users WHERE zgid = :zgid AND verified_by IS NOT NULL))
        ORDER BY s.updated_at DESC
        """,
        {"zgid": zgid},
    )
    views = []
    for row in rows:
        billing = (
            BillingSubscription.model_validate_json(row["billing_json"])
            if row["billing_json"]
            else None
        )
        owner = _owner(db, row, billing)
        # Only billing's word or a verified claim makes an org the owner (never a mere visit).
        if owner.zgid != zgid:
            continue
        views.append(_subscription_view(db, row, billing, owner, settings))
    return views


def _owner(
    db: sqlite_utils.Database, row: dict[str, Any], billing: BillingSubscription | None
) -> Identity:
    customer = customer_row(db, row["customer_id"])
    bound = Identity(row["zuid"], row["zgid"])
    zuid = resolve_identity(billing, customer, bound, None).zuid
    binding = user_row(db, zuid) if zuid else None
    return resolve_identity(billing, customer, bound, binding)


def _subscription_view(
    db: sqlite_utils.Database,
    row: dict[str, Any],
    billing: BillingSubscription | None,
    owner: Identity,
    settings: Settings,
) -> dict[str, Any]:
    extra = (billing.model_extra or {}) if billing else {}
    acked = PlatformState.from_json(row["acked_json"])
    queued = PlatformState.from_json(row["queued_json"])
    latest = next(
        iter(
            select_all(
                db,
                "SELECT state, last_error FROM deliveries WHERE subscription_id = ?"
                " ORDER BY id DESC LIMIT 1",
                [row["subscription_id"]],
            )
        ),
        None,
    )
    sync_state, sync_text = _sync(row, acked, queued, latest)
    plan_ref = (
        parse_plan_code(billing.plan.plan_code, settings.platform.app_domain)
        if billing and billing.plan
        else None
    )
    return {
        "subscription_id": row["subscription_id"],
        "status": row["status"],
        "ended": (row["status"] or "") in ENDED_STATUSES,
        "plan_code": row["plan_code"],
        "planid": plan_ref.planid if plan_ref else None,
        "frequency": plan_ref.frequency if plan_ref else None,
        "plan_name": billing.plan.name if billing and billing.plan else None,
        "users": billing.plan.quantity if billing and billing.plan else None,
        "storage_units": storage_units(billing, settings.plans) if billing else None,
        "cycle": CYCLES.get((billing.interval_unit or "").lower()) if billing else None,
        "term_starts_at": extra.get("current_term_starts_at"),
        "term_ends_at": billing.current_term_ends_at if billing else None,
        "next_billing_at": billing.next_billing_at if billing else None,
        "amount": parse_amount(extra.get("amount")),  # None when unreadable
        "currency_code": extra.get("currency_code"),
        "owner_zuid": owner.zuid,
        "customer_id": row["customer_id"],
        "sync_state": sync_state,
        "sync_text": sync_text,
    }


def _sync(
    row: dict[str, Any],
    acked: PlatformState | None,
    queued: PlatformState | None,
    latest: dict[str, Any] | None,
) -> tuple[str, str]:
    if row["parked_reason"]:
        return "parked", "Waiting: the app does not know your organisation yet"
    if latest and latest["state"] == "dead":
        return "dead", "The app could not be updated; the vendor has been alerted"
    if latest and latest["state"] in ("pending", "in_flight"):
        return "pending", "The app is being updated"
    if queued is not None and queued == acked:
        return "ok", "Up to date"
    return "none", "Not sent to the app"


def org_claimed_subscription_ids(db: sqlite_utils.Database, zgid: str) -> list[str]:
    """Subscriptions this org's users named on a visit that billing has not described yet."""
    rows = select_all(
        db,
        "SELECT c.subscription_id FROM landing_claims c LEFT JOIN subscriptions s"
        " ON s.subscription_id = c.subscription_id"
        " WHERE c.zgid = ? AND (s.subscription_id IS NULL OR s.billing_json IS NULL)",
        [zgid],
    )
    return [row["subscription_id"] for row in rows]
