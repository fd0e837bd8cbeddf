"""Single use of a signed link's nonce, recorded in the database.

The database, not memory: a restart or a second replica must refuse a replay as well. A nonce is
kept until its link could no longer verify anyway (``ts`` + tolerance, or now + tolerance if
later), then pruned by the next visit. Runs inside a store transaction.
"""

from __future__ import annotations

from broker.store.engine.tx import Tx


def consume_nonce(db: Tx, nonce: str, *, ts: float, now: float, tolerance_seconds: float) -> bool:
    """Record ``nonce`` as used; False when it already was (a replay)."""
    db.execute("DELETE FROM landing_nonces WHERE expires_at < ?", [now])
    inserted = db.execute(
        "INSERT INTO landing_nonces (nonce, used_at, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (nonce) DO NOTHING",
        [nonce, now, max(ts, now) + tolerance_seconds],
    ).rowcount
    return bool(inserted)
