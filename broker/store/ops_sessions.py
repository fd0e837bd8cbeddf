"""The console's sessions (table ``ops_sessions``, owned here): opened at sign-in, ended at
sign-out, and live only while unexpired and made with today's operator password.

The signed cookie alone cannot be taken back: a copy of it would work for its whole max age,
after sign-out and after the password changed. The row is what sign-out deletes. Each function
runs inside a store transaction.
"""

from __future__ import annotations

import hmac

from broker.store.engine.tx import Tx
from broker.store.sql import as_float


def open_session(
    db: Tx, session_key: str, *, operator: str, credential: str, now: float, expires_at: float
) -> None:
    db.execute("DELETE FROM ops_sessions WHERE expires_at < ?", [now])
    db.execute(
        "INSERT INTO ops_sessions (session_key, operator, credential, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [session_key, operator, credential, now, expires_at],
    )


def session_is_live(db: Tx, session_key: str, *, credential: str, now: float) -> bool:
    row = db.select_one(
        "SELECT credential, expires_at FROM ops_sessions WHERE session_key = ?", [session_key]
    )
    if row is None or as_float(row, "expires_at") <= now:
        return False
    return hmac.compare_digest(str(row["credential"]).encode(), credential.encode())


def end_session(db: Tx, session_key: str) -> bool:
    """Delete the session; False if it was already gone."""
    return bool(
        db.execute("DELETE FROM ops_sessions WHERE session_key = ?", [session_key]).rowcount
    )
