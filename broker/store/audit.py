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
