"""Migration 7: Sign in with Zoho binds a zgid only with evidence. Never edit it once shipped."""

from __future__ import annotations

from broker.store.engine.tx import Tx


def m007_zgid_evidence(db: Tx) -> None:
    # What proved a zoho-mode binding's zgid (core.zgid_evidence); NULL for bindings made before
    # evidence was required, which therefore prove nothing any more.
    db.execute("ALTER TABLE users ADD COLUMN zgid_evidence TEXT")
    # One binding request per user (the latest replaces a pending one), decided in /ops.
    db.execute(
        """
        CREATE TABLE binding_requests (
            zuid TEXT PRIMARY KEY,
            zgid TEXT NOT NULL,
            email TEXT,
            display_name TEXT,
            requested_at REAL NOT NULL,
            status TEXT NOT NULL,
            decided_by TEXT,
            decided_at REAL
        )
        """
    )
    db.execute("CREATE INDEX binding_requests_status ON binding_requests (status, requested_at)")
