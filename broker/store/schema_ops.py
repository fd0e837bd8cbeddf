"""Migration 6: the operator console's table of refused webhook requests, counted per day and
reason (never a row per request). Never edit it once shipped."""

from __future__ import annotations

from broker.store.engine.tx import Tx


def m006_webhook_refusals(db: Tx) -> None:
    db.execute(
        """
        CREATE TABLE webhook_refusals (
            day TEXT NOT NULL,
            reason TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, reason)
        )
        """
    )
