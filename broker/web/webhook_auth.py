"""Who may post webhooks: the ``zapikey`` header and, when configured, Zoho's HMAC signature.

Both checks compare in constant time. The signature scheme (docs/contracts.md §3): every
query-string and form key/value pair sorted by key and concatenated as ``keyvalue``, then the
raw JSON body; HMAC-SHA256, hex or base64 by setting. The raw bytes received are hashed, never
re-serialised JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from broker.errors import SignatureRefused, ZapikeyRefused

SIGNATURE_HEADER = "X-Zoho-Webhook-Signature"


def check_zapikey(presented: str | None, accepted: Iterable[bytes]) -> None:
    if not presented:
        raise ZapikeyRefused(
            "missing zapikey header",
            hint="add the custom header 'zapikey' to the Zoho Billing webhook",
        )
    if not presented.isascii():
        # Keys are ASCII; a non-UTF-8 header arrives surrogate-escaped and cannot even encode.
        raise ZapikeyRefused(
            "the zapikey header holds non-ASCII characters, so it cannot match",
            hint="copy the ZAPIKEY from the Developer Console into the webhook's zapikey header",
        )
    candidate = presented.strip().encode()
    # Compare against every key, without stopping early, so timing says nothing about which.
    matched = False
    for key in accepted:
        matched |= hmac.compare_digest(candidate, key)
    if not matched:
        raise ZapikeyRefused(
            "the zapikey header does not match",
            hint="copy the ZAPIKEY from the Developer Console into the webhook's zapikey header",
        )


def signed_payload(pairs: Iterable[tuple[str, str]], raw_body: bytes) -> bytes:
    """The exact bytes Zoho signs: sorted ``keyvalue`` pairs, then the raw body."""
    ordered = sorted(pairs, key=lambda pair: pair[0])
    return "".join(f"{key}{value}" for key, value in ordered).encode() + raw_body


def compute_signature(secret: str, payload: bytes, encoding: str = "hex") -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()


def check_signature(
    presented: str | None,
    *,
    secret: str,
    encoding: str,
    pairs: Iterable[tuple[str, str]],
    raw_body: bytes,
) -> None:
    if not presented:
        raise SignatureRefused(
            f"missing {SIGNATURE_HEADER} header",
            hint="this broker requires signed webhooks: enable 'secure this webhook' in Zoho",
        )
    if not presented.isascii():
        raise SignatureRefused(
            f"the {SIGNATURE_HEADER} header holds non-ASCII characters; the webhook signature "
            "is hex or base64",
            hint="check that the signing secret configured here equals the one in Zoho",
        )
    expected = compute_signature(secret, signed_payload(pairs, raw_body), encoding)
    given = presented.strip()
    if encoding == "hex":
        given = given.lower()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureRefused(
            "the webhook signature does not match",
            hint="check that the signing secret configured here equals the one in Zoho",
        )
