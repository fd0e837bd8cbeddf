"""Signed Manage Subscription links: the Vertical Solution signs the parameters it sends.

Canonical string: every parameter except ``sig``, sorted by name, as ``name=value`` joined by
``&`` (values as sent, not re-encoded). ``sig`` is the hex HMAC-SHA256 of that string with the
shared ``landing.link_secret``; ``ts`` (Unix seconds) must be within the tolerance of now, so a
copied link stops working. A Deluge script can build it with ``zoho.encryption.hmacsha256``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from .errors import Forbidden

SIGNATURE_PARAM = "sig"
TIMESTAMP_PARAM = "ts"


def canonical_string(pairs: Iterable[tuple[str, str]]) -> str:
    kept = sorted((k, v) for k, v in pairs if k != SIGNATURE_PARAM)
    return "&".join(f"{key}={value}" for key, value in kept)


def sign_link(pairs: Iterable[tuple[str, str]], secret: str) -> str:
    return hmac.new(secret.encode(), canonical_string(pairs).encode(), hashlib.sha256).hexdigest()


def verify_link(
    pairs: list[tuple[str, str]], *, secret: str, now: float, tolerance_seconds: float
) -> None:
    """Refuse a link whose signature is missing or wrong, or whose timestamp is stale."""
    values = dict(pairs)
    refused = Forbidden(
        "this link is not valid any more, or it was changed",
        hint="open the subscription page again from the app's Subscription menu",
    )
    given = values.get(SIGNATURE_PARAM, "")
    expected = sign_link(pairs, secret)
    if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
        raise refused
    try:
        issued = float(values.get(TIMESTAMP_PARAM, ""))
    except ValueError:
        raise refused from None
    if abs(now - issued) > tolerance_seconds:
        raise refused
