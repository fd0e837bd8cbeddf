"""The pruning lease (``retention_lease``): one replica prunes at a time. Like reconciliation's
lock, a lease so that a process that dies frees it; each batch renews it in the same
transaction, so a pruner whose lease was taken over deletes nothing more. Functions run inside
store write transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from broker.store.engine.tx import Tx
from broker.store.sql import number

LEASE_NAME = "prune"
T = TypeVar("T")


class LeaseLost(Exception):
    """Another process took the pruning lease: this run must delete nothing more."""


def take_lease(db: Tx, owner: str, *, now: float, seconds: float) -> bool:
    """Take the lease unless another owner holds an unexpired one."""
    held = db.select_one(
        "SELECT owner, expires_at FROM retention_lease WHERE name = ?", [LEASE_NAME]
    )
    if held is not None and held["owner"] != owner and number(held, "expires_at") > now:
        return False
    db.execute(
        "INSERT INTO retention_lease (name, owner, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE"
        " SET owner = excluded.owner, expires_at = excluded.expires_at",
        [LEASE_NAME, owner, now + seconds],
    )
    return True


def while_held(db: Tx, work: Callable[[Tx], T], *, owner: str, now: float, seconds: float) -> T:
    """``work`` in the transaction that renews ``owner``'s lease; ``LeaseLost`` if it is gone."""
    renewed = db.execute(
        "UPDATE retention_lease SET expires_at = ? WHERE name = ? AND owner = ?",
        [now + seconds, LEASE_NAME, owner],
    )
    if renewed.rowcount != 1:
        raise LeaseLost(owner)
    return work(db)


def release_lease(db: Tx, owner: str) -> None:
    db.execute("DELETE FROM retention_lease WHERE name = ? AND owner = ?", [LEASE_NAME, owner])
