"""Migration 8: money events (refunds, chargebacks, voided invoices, credit notes) and the hold
they may put on a subscription's access. Never edit it once shipped."""

from __future__ import annotations

from broker.store.engine.tx import Tx


def m009_money_events(db: Tx) -> None:
    db.execute(
        """
        CREATE TABLE money_events (
            event_id TEXT PRIMARY KEY REFERENCES webhook_events (event_id),
            event_type TEXT NOT NULL,
            kind TEXT NOT NULL,
            subscription_id TEXT,
            customer_id TEXT,
            amount TEXT,
            of_total TEXT,
            currency_code TEXT,
            verdict TEXT NOT NULL,
            reason TEXT NOT NULL,
            received_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX money_events_received ON money_events (received_at)")
    # The money event that withholds access, until billing reports a new term.
    db.execute("ALTER TABLE subscriptions ADD COLUMN access_hold TEXT")
