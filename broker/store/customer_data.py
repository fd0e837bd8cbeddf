"""One customer's data, found across every table, for ``broker export-customer`` and
``broker erase-customer``.

A customer is named by billing customer id or by zgid (the org); the scope grows once each way
(the org's customers, the customers' orgs) and takes in every subscription of either. Export
reads across tables (a read model); erasure calls each table's owner module, in an order the
foreign keys accept, and leaves one audit row that holds only counts, no id or personal data.
Webhook event ids stay (the dedup key, so a resent webhook recreates nothing); their bodies go.
"""

# ruff: noqa: S608 - SQL here is built from our table names and placeholder counts; values bind
from __future__ import annotations

import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from broker.core.ids import is_user_id, is_zoho_id
from broker.store import (
    audit,
    binding_requests,
    checkouts,
    events,
    identity,
    money_events,
    outbox,
    reconcile,
    reconcile_missing,
    subscriptions,
)
from broker.store.engine.tx import SqlValue, Tx
from broker.store.ops_actions import Operator
from broker.store.ops_actions import audit as audit_operator

ERASE_ACTION = "ops.erase_customer"


class UnknownCustomer(LookupError):
    """Nothing in the store belongs to the customer named."""


@dataclass(frozen=True)
class CustomerScope:
    customer_ids: tuple[str, ...]
    zgids: tuple[str, ...]
    subscription_ids: tuple[str, ...]


@dataclass(frozen=True)
class CustomerExport:
    """Every stored row of one customer, table by table; raw webhook bodies as text (JSON or
    form) when they are UTF-8, else base64 (``raw_body_base64``)."""

    scope: CustomerScope
    tables: dict[str, list[dict[str, SqlValue]]]

    def to_json(self) -> str:
        return json.dumps(
            {
                "customer_ids": list(self.scope.customer_ids),
                "zgids": list(self.scope.zgids),
                "subscription_ids": list(self.scope.subscription_ids),
                "tables": self.tables,
            },
            indent=2,
            sort_keys=True,
        )


def check_ids(customer_id: str | None, zgid: str | None) -> None:
    """ValueError naming what is wrong, before anything is read."""
    if (customer_id is None) == (zgid is None):
        raise ValueError("name the customer by exactly one of --customer-id or --zgid")
    if customer_id is not None and not is_zoho_id(customer_id):
        raise ValueError("--customer-id must be billing's customer id: 1 to 32 digits")
    if zgid is not None and not is_user_id(zgid):
        raise ValueError("--zgid must be the org's zgid: 1 to 20 digits")


def _marks(values: Sequence[str]) -> str:
    return ", ".join("?" * len(values)) or "NULL"


def _column(db: Tx, sql: str, params: Sequence[str]) -> set[str]:
    return {str(row["v"]) for row in db.select_all(sql, list(params)) if row["v"] is not None}


def find_scope(db: Tx, *, customer_id: str | None, zgid: str | None) -> CustomerScope:
    """The customer's ids across the store; ``UnknownCustomer`` if none is stored."""
    check_ids(customer_id, zgid)
    cids = {customer_id} if customer_id else set()
    orgs = {zgid} if zgid else set()
    o, c = sorted(orgs), sorted(cids)
    cids |= _column(db, f"SELECT customer_id AS v FROM customers WHERE zgid IN ({_marks(o)})", o)
    cids |= _column(
        db,
        f"SELECT customer_id AS v FROM subscriptions WHERE zgid IN ({_marks(o)})",
        o,
    )
    orgs |= _column(db, f"SELECT zgid AS v FROM customers WHERE customer_id IN ({_marks(c)})", c)
    orgs |= _column(
        db,
        f"SELECT zgid AS v FROM subscriptions WHERE customer_id IN ({_marks(c)})",
        c,
    )
    o, c = sorted(orgs), sorted(cids)
    sids = _column(
        db,
        "SELECT subscription_id AS v FROM subscriptions"
        f" WHERE customer_id IN ({_marks(c)}) OR zgid IN ({_marks(o)})",
        [*c, *o],
    )
    scope = CustomerScope(tuple(c), tuple(o), tuple(sorted(sids)))
    if not any(_rows(db, scope).values()):
        named = f"customer {customer_id}" if customer_id else f"zgid {zgid}"
        raise UnknownCustomer(f"no stored data for {named}: check the id (nothing was changed)")
    return scope


def _rows(db: Tx, scope: CustomerScope) -> dict[str, list[dict[str, SqlValue]]]:
    c, o, s = scope.customer_ids, scope.zgids, scope.subscription_ids
    queries: dict[str, tuple[str, list[str]]] = {
        "customers": (f"customer_id IN ({_marks(c)}) OR zgid IN ({_marks(o)})", [*c, *o]),
        "users": (f"zgid IN ({_marks(o)})", [*o]),
        "subscriptions": (f"subscription_id IN ({_marks(s)})", [*s]),
        "landing_claims": (f"zgid IN ({_marks(o)}) OR subscription_id IN ({_marks(s)})", [*o, *s]),
        "deliveries": (f"subscription_id IN ({_marks(s)})", [*s]),
        "attempts": (
            f"delivery_id IN (SELECT id FROM deliveries WHERE subscription_id IN ({_marks(s)}))",
            [*s],
        ),
        "webhook_events": (f"subscription_id IN ({_marks(s)})", [*s]),
        "money_events": (
            f"customer_id IN ({_marks(c)}) OR subscription_id IN ({_marks(s)})",
            [*c, *s],
        ),
        "audit_log": (f"zgid IN ({_marks(o)}) OR subscription_id IN ({_marks(s)})", [*o, *s]),
        "checkouts": (f"zgid IN ({_marks(o)}) OR subscription_id IN ({_marks(s)})", [*o, *s]),
        "binding_requests": (f"zgid IN ({_marks(o)})", [*o]),
        "billing_missing": (f"subscription_id IN ({_marks(s)})", [*s]),
        "reconcile_drift": (f"subscription_id IN ({_marks(s)})", [*s]),
    }
    return {
        table: [
            _shown(row) for row in db.select_all(f"SELECT * FROM {table} WHERE {where}", params)
        ]
        for table, (where, params) in queries.items()
    }


def _shown(row: dict[str, SqlValue]) -> dict[str, SqlValue]:
    """A row as JSON can hold it: bytes as text when UTF-8, else base64."""
    shown: dict[str, SqlValue] = {}
    for key, value in row.items():
        if isinstance(value, bytes):
            try:
                shown[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                shown[f"{key}_base64"] = binascii.b2a_base64(value, newline=False).decode()
            continue
        shown[key] = value
    return shown


def export_customer(db: Tx, *, customer_id: str | None, zgid: str | None) -> CustomerExport:
    scope = find_scope(db, customer_id=customer_id, zgid=zgid)
    return CustomerExport(scope, _rows(db, scope))


def erase_customer(
    db: Tx, who: Operator, *, customer_id: str | None, zgid: str | None, now: float
) -> dict[str, int]:
    """Delete the customer's rows (event ids stay, bodies emptied); return counts per table."""
    scope = find_scope(db, customer_id=customer_id, zgid=zgid)
    c, o, s = scope.customer_ids, scope.zgids, scope.subscription_ids
    counts = {
        "money_events": money_events.erase_money_events(db, c, s),
        "deliveries": outbox.erase_deliveries(db, s),
        "reconcile_drift": reconcile.erase_drift(db, s),
        "billing_missing": reconcile_missing.erase_missing(db, s),
        "checkouts": checkouts.erase_checkouts(db, o, s),
        "binding_requests": binding_requests.erase_binding_requests(db, o),
        "audit_log": audit.erase_audit(db, o, s),
        **identity.erase_identity(db, c, o, s),
        "webhook_events": events.forget_subscriptions(db, s, now=now),
        "subscriptions": subscriptions.erase_subscriptions(db, s),
    }
    audit_operator(db, who, ERASE_ACTION, "erased", now=now, detail={"rows": counts})
    return counts
