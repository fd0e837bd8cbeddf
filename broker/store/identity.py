"""The identity tables: customers, users, landing claims; and reads of the subscriptions row.

Rows come back as the frozen records ``core.identity`` and ``core.decide`` reason about; who wins
is decided there, never here. Column lists are written from the records' fields, so a column
added by a later migration does not break a read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, TypeVar

from broker.core.decide import StoredSubscription
from broker.core.identity import Claim, CustomerRecord, UserRecord
from broker.core.subscription_state import SubscriptionState
from broker.store.engine.tx import Tx
from broker.store.sql import as_record, select_all, select_one, upsert

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")  # a frozen record read from one row


def columns(record: type[DataclassInstance], table: str = "") -> str:
    """The SELECT list of a record's fields, optionally qualified by a table alias."""
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + f.name for f in fields(record))


def _one(db: Tx, record: type[R], table: str, where: str, *key: str) -> R | None:
    sql = f"SELECT {columns(record)} FROM {table} WHERE {where}"  # noqa: S608 - names are ours
    row = select_one(db, sql, list(key))
    return record(**row) if row is not None else None


def subscription_row(db: Tx, subscription_id: str) -> StoredSubscription | None:
    return _one(db, StoredSubscription, "subscriptions", "subscription_id = ?", subscription_id)


def customer_row(db: Tx, customer_id: str | None) -> CustomerRecord | None:
    if not customer_id:
        return None
    return _one(db, CustomerRecord, "customers", "customer_id = ?", customer_id)


def user_row(db: Tx, zuid: str) -> UserRecord | None:
    return _one(db, UserRecord, "users", "zuid = ?", zuid)


def claims_on(db: Tx, subscription_id: str) -> tuple[Claim, ...]:
    """Every landing claim on a subscription, oldest first."""
    rows = select_all(
        db,
        f"SELECT {columns(Claim)} FROM landing_claims WHERE subscription_id = ?"  # noqa: S608
        " ORDER BY claimed_at, zgid",
        [subscription_id],
    )
    return tuple(as_record(Claim, row) for row in rows)


def waiting_for_zgid(db: Tx, zuid: str) -> list[str]:
    """Parked subscriptions whose billing customer names this zuid but no zgid."""
    rows = select_all(
        db,
        "SELECT s.subscription_id FROM subscriptions s JOIN customers c"
        " ON c.customer_id = s.customer_id"
        " WHERE s.state = ? AND c.zuid = ? AND c.zgid IS NULL",
        [SubscriptionState.PARKED.value, zuid],
    )
    return [str(row["subscription_id"]) for row in rows]


def save_customer(db: Tx, customer: CustomerRecord) -> None:
    upsert(db, "customers", asdict(customer), key="customer_id")


def save_user(db: Tx, user: UserRecord) -> None:
    upsert(db, "users", asdict(user), key="zuid")


def save_claim(db: Tx, claim: Claim) -> None:
    upsert(db, "landing_claims", asdict(claim), key=("subscription_id", "zgid"))


def erase_identity(
    db: Tx, customer_ids: Sequence[str], zgids: Sequence[str], subscription_ids: Sequence[str]
) -> dict[str, int]:
    """Erasure: these billing customers, the orgs' users, and every landing claim on the orgs
    or their subscriptions."""
    customers = ", ".join("?" * len(customer_ids)) or "NULL"
    orgs = ", ".join("?" * len(zgids)) or "NULL"
    subs = ", ".join("?" * len(subscription_ids)) or "NULL"
    return {
        "customers": db.execute(
            f"DELETE FROM customers WHERE customer_id IN ({customers})"  # noqa: S608
            f" OR zgid IN ({orgs})",
            [*customer_ids, *zgids],
        ).rowcount,
        "users": db.execute(
            f"DELETE FROM users WHERE zgid IN ({orgs})",  # noqa: S608
            list(zgids),
        ).rowcount,
        "landing_claims": db.execute(
            f"DELETE FROM landing_claims WHERE zgid IN ({orgs})"  # noqa: S608
            f" OR subscription_id IN ({subs})",
            [*zgids, *subscription_ids],
        ).rowcount,
    }
