"""Migration: the console's sign-in sessions, one row each, so signing out (or a new operator
password) ends a session for every replica and across restarts. Never edit it once shipped."""

from __future__ import annotations

from broker.store.engine.tx import Tx


def m011_ops_sessions(db: Tx) -> None:
    # session_key: SHA-256 of the id in the signed cookie (a copy of the table opens nothing).
    # credential: a digest of ops.password_hash at sign-in; another hash ends the session.
    db.execute(
        """
        CREATE TABLE ops_sessions (
            session_key TEXT PRIMARY KEY,
            operator TEXT NOT NULL,
            credential TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX ops_sessions_expires ON ops_sessions (expires_at)")
