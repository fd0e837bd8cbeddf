"""The audit log of the Manage Subscription page: who did what to which subscription, and how
it ended. Rows are only ever added. Functions run inside store transactions."""

from __future__ import annotations

import json
from typing import Any

from broker.store.tx import Tx


def record_action(
    db: Tx,
    *,
    at: float,
    zuid: str,
    zgid: str,
    action: str,
    result: str,
    subscription_id: str | None = None,
    detail: dict[str, Any] | None = None,
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
            json.dumps(detail, sort_keys=True) if detail else None,
            result,
            request_id,
        ],
    )


def record_notice_once(
    db: Tx, *, at: float, zuid: str, zgid: str, action: str, detail: dict[str, Any]
) -> bool:
    """An operator notice about org ``zgid``, written once per org and kind (True if new)."""
    seen = db.execute(
        "SELECT 1 FROM audit_log WHERE action = ? AND zgid = ? LIMIT 1", [action, zgid]
    ).fetchone()
    if seen:
        return False
    record_action(db, at=at, zuid=zuid, zgid=zgid, action=action, result="notice", detail=detail)
    return True
