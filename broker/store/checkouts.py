"""Hosted checkout pages the broker opened, so a return is only honoured for the org that
started it, and the user's choices survive a failed or expired payment. Functions run inside
store transactions."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from broker.store.sql import select_all


def open_checkout(
    db: sqlite_utils.Database,
    *,
    hostedpage_id: str,
    zgid: str,
    zuid: str,
    action: str,
    subscription_id: str | None,
    form: dict[str, Any],
    now: float,
) -> None:
    db.execute(
        "INSERT OR REPLACE INTO checkouts (hostedpage_id, zgid, zuid, action, subscription_id,"
        " form_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [hostedpage_id, zgid, zuid, action, subscription_id, json.dumps(form), now],
    )


def checkout_row(db: sqlite_utils.Database, hostedpage_id: str) -> dict[str, Any] | None:
    rows = select_all(db, "SELECT * FROM checkouts WHERE hostedpage_id = ?", [hostedpage_id])
    return rows[0] if rows else None


def finish_checkout(
    db: sqlite_utils.Database, hostedpage_id: str, *, status: str, now: float
) -> None:
    db.execute(
        "UPDATE checkouts SET status = ?, finished_at = ? WHERE hostedpage_id = ?",
        [status, now, hostedpage_id],
    )
