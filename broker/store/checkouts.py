"""Hosted checkout pages the broker opened, so a return is only honoured for the org that
started it, and the user's choices survive a failed or expired payment. Functions run inside
store transactions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from broker.core.hosted_pages import CheckoutStatus
from broker.core.policy import Action
from broker.store.engine.tx import Tx
from broker.store.sql import select_one, text, text_or_none


@dataclass(frozen=True)
class Checkout:
    """A hosted checkout page the broker opened, and the choices the user made for it."""

    hostedpage_id: str
    zgid: str
    zuid: str
    action: Action  # SUBSCRIBE or CHANGE: the actions that go through checkout
    subscription_id: str | None
    form: dict[str, str]
    status: str  # created, then billing's word: success, failure, expired


def open_checkout(
    db: Tx,
    *,
    hostedpage_id: str,
    zgid: str,
    zuid: str,
    action: Action,
    subscription_id: str | None,
    form: Mapping[str, str],
    now: float,
) -> None:
    db.execute(
        "INSERT INTO checkouts (hostedpage_id, zgid, zuid, action, subscription_id,"
        " form_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hostedpage_id) DO UPDATE"
        " SET zgid = excluded.zgid, zuid = excluded.zuid, action = excluded.action,"
        " subscription_id = excluded.subscription_id, form_json = excluded.form_json,"
        " created_at = excluded.created_at, status = 'created', finished_at = NULL",
        [hostedpage_id, zgid, zuid, action.value, subscription_id, json.dumps(dict(form)), now],
    )


def checkout_row(db: Tx, hostedpage_id: str) -> Checkout | None:
    row = select_one(
        db,
        "SELECT hostedpage_id, zgid, zuid, action, subscription_id, form_json, status"
        " FROM checkouts WHERE hostedpage_id = ?",
        [hostedpage_id],
    )
    if row is None:
        return None
    return Checkout(
        hostedpage_id=text(row, "hostedpage_id"),
        zgid=text(row, "zgid"),
        zuid=text(row, "zuid"),
        action=Action(text(row, "action")),
        subscription_id=text_or_none(row, "subscription_id"),
        form=_form_of(json.loads(text(row, "form_json"))),
        status=text(row, "status"),
    )


def _form_of(stored: object) -> dict[str, str]:
    """The kept choices as text fields (``open_checkout`` only ever stores such an object)."""
    if not isinstance(stored, dict):
        return {}
    return {str(name): str(value) for name, value in stored.items()}


def finish_checkout(db: Tx, hostedpage_id: str, *, status: CheckoutStatus, now: float) -> None:
    db.execute(
        "UPDATE checkouts SET status = ?, finished_at = ? WHERE hostedpage_id = ?",
        [status.value, now, hostedpage_id],
    )


def erase_checkouts(db: Tx, zgids: Sequence[str], subscription_ids: Sequence[str]) -> int:
    """Erasure: every checkout these orgs opened or that names these subscriptions."""
    orgs = ", ".join("?" * len(zgids)) or "NULL"
    subs = ", ".join("?" * len(subscription_ids)) or "NULL"
    return db.execute(
        f"DELETE FROM checkouts WHERE zgid IN ({orgs}) OR subscription_id IN ({subs})",  # noqa: S608
        [*zgids, *subscription_ids],
    ).rowcount
