"""The audit log of the Manage Subscription page: who did what to which subscription, and how
it ended. Rows are only ever added. Functions run inside store transactions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from broker.store.engine.tx import Tx
from broker.store.sql import as_float, text


def record_action(
    db: Tx,
    *,
    at: float,
    zuid: str,
    zgid: str,
    action: str,
    result: str,
    subscription_id: str | None = None,
    detail: Mapping[str, object] | None = None,
    request_id: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO audit_log (at, zuid, zgid, action, subscription_id, detail, result,"
        " request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            at,
            zuid,
            zgid,
            action,
            subscription_id,
            json.dumps(dict(detail), sort_keys=True) if detail else None,
            result,
            request_id,
        ],
    )


def record_notice_once(
    db: Tx, *, at: float, zuid: str, zgid: str, action: str, detail: Mapping[str, object]
) -> bool:
    """An operator notice about org ``zgid``, written once per org and kind (True if new)."""
    seen = db.execute(
        "SELECT 1 FROM audit_log WHERE action = ? AND zgid = ? LIMIT 1", [action, zgid]
    ).fetchone()
    if seen:
        return False
    record_action(db, at=at, zuid=zuid, zgid=zgid, action=action, result="notice", detail=detail)
    return True


@dataclass(frozen=True)
class ConfirmedMoney:
    """The money preview a customer confirmed with a page action that billing then applied."""

    at: float
    action: str
    move: str  # a ``core.change_money.MoneyMove`` value
    amount: str


def last_confirmed_money(
    db: Tx, subscription_id: str, actions: tuple[str, ...]
) -> ConfirmedMoney | None:
    """The latest of ``actions`` on the subscription that billing applied, with the preview its
    audit row kept (``money``, ``amount``); None when there is none or it kept no figure."""
    marks = ", ".join("?" for _ in actions)
    row = db.select_one(
        "SELECT at, action, detail FROM audit_log WHERE subscription_id = ? AND result = 'ok'"  # noqa: S608 - placeholders only
        f" AND action IN ({marks}) ORDER BY at DESC, id DESC LIMIT 1",
        [subscription_id, *actions],
    )
    if row is None or not row["detail"]:
        return None
    detail = json.loads(text(row, "detail"))
    move, amount = detail.get("money"), detail.get("amount")
    if not isinstance(move, str) or not isinstance(amount, str):
        return None
    return ConfirmedMoney(as_float(row, "at"), str(row["action"]), move, amount)


def prune_audit(db: Tx, *, before: float, limit: int) -> int:
    """Delete up to ``limit`` audit rows older than ``before`` (retention)."""
    return db.execute(
        "DELETE FROM audit_log WHERE id IN"
        " (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
        [before, limit],
    ).rowcount


def erase_audit(db: Tx, zgids: Sequence[str], subscription_ids: Sequence[str]) -> int:
    """Erasure: every audit row naming one of these orgs or subscriptions."""
    if not zgids and not subscription_ids:
        return 0
    orgs = ", ".join("?" * len(zgids)) or "NULL"
    subs = ", ".join("?" * len(subscription_ids)) or "NULL"
    return db.execute(
        f"DELETE FROM audit_log WHERE zgid IN ({orgs}) OR subscription_id IN ({subs})",  # noqa: S608
        [*zgids, *subscription_ids],
    ).rowcount
