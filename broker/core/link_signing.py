"""Signed Manage Subscription links (docs/contracts.md §6.1): the canonical string and its check.

``sig`` is the lowercase hex HMAC-SHA256, keyed with ``landing.link_secret``, of the canonical
string: every parameter except ``sig``, sorted by name, each written ``quote(name)=quote(value)``
with RFC 3986 percent-encoding of the UTF-8 bytes (only ``A-Z a-z 0-9 - . _ ~`` left as they are),
joined by ``&``. Escaping is what makes the string unambiguous: a signed value can no longer hold
``&name=`` and be re-split into other parameters.

``ts`` (Unix seconds) must be within the tolerance of now and ``nonce`` is single use (the caller
records it durably). Every parameter the browser sent is covered, so an added one breaks the
signature. Pure: no I/O; a refusal never carries the signature or the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from broker.errors import Forbidden

SIGNATURE_PARAM = "sig"
TIMESTAMP_PARAM = "ts"
NONCE_PARAM = "nonce"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9._~-]{6,128}")
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class LinkRefusal(StrEnum):
    """Why a signed link was refused: logged, and explained on the refusal page."""

    REPEATED_PARAMETER = "repeated_parameter"
    MISSING_SIGNATURE = "missing_signature"
    MISSING_TIMESTAMP = "missing_timestamp"
    MISSING_NONCE = "missing_nonce"
    BAD_SIGNATURE = "bad_signature"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_NONCE = "bad_nonce"
    REPLAYED_NONCE = "replayed_nonce"


_EXPLANATIONS = {
    LinkRefusal.REPEATED_PARAMETER: "a parameter appears more than once in the link",
    LinkRefusal.MISSING_SIGNATURE: "the link is not signed (no sig parameter)",
    LinkRefusal.MISSING_TIMESTAMP: "the link has no ts (time of signing)",
    LinkRefusal.MISSING_NONCE: "the link has no nonce (a single-use value)",
    LinkRefusal.BAD_SIGNATURE: "the link's signature does not match its parameters",
    LinkRefusal.BAD_TIMESTAMP: "the link's ts is not a Unix time in seconds",
    LinkRefusal.STALE_TIMESTAMP: "the link is too old (or its ts is in the future)",
    LinkRefusal.BAD_NONCE: "the link's nonce is not 6-128 letters, digits or - . _ ~",
    LinkRefusal.REPLAYED_NONCE: "the link was already used; each link opens the page once",
}


class SignedLinkRefused(Forbidden):
    """A signed-link visit that is refused; ``reason`` says which check failed."""

    code = "link_refused"

    def __init__(self, reason: LinkRefusal) -> None:
        super().__init__(
            "this link is not valid any more, or it was changed",
            hint="open the subscription page again from the app's Subscription menu",
            problems=[_EXPLANATIONS[reason]],
        )
        self.reason = reason


@dataclass(frozen=True)
class SignedLink:
    """A link whose signature and timestamp were verified; the nonce is not yet consumed."""

    params: dict[str, str]  # every parameter except sig, as the vendor signed them
    ts: int
    nonce: str


def rfc3986(text: str) -> str:
    """Percent-encode the UTF-8 bytes of ``text``, leaving only ``A-Z a-z 0-9 - . _ ~``."""
    return quote(text, safe="", encoding="utf-8", errors="strict")


def canonical_string(pairs: Iterable[tuple[str, str]]) -> str:
    """The signed string; names are sorted as given (by code point), before escaping."""
    kept = sorted((name, value) for name, value in pairs if name != SIGNATURE_PARAM)
    return "&".join(f"{rfc3986(name)}={rfc3986(value)}" for name, value in kept)


def sign_link(pairs: Iterable[tuple[str, str]], secret: str) -> str:
    """The ``sig`` a vendor computes (used by ``broker sign-link``, the demo and tests)."""
    canonical = canonical_string(pairs).encode()
    return hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()


def verify_link(
    pairs: list[tuple[str, str]], *, secret: str, now: float, tolerance_seconds: float
) -> SignedLink:
    """Check a link's parameters; raise ``SignedLinkRefused`` naming the first failed check."""
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise SignedLinkRefused(LinkRefusal.REPEATED_PARAMETER)
    values = dict(pairs)
    given = values.get(SIGNATURE_PARAM, "").strip()
    if not given:
        raise SignedLinkRefused(LinkRefusal.MISSING_SIGNATURE)
    if not values.get(TIMESTAMP_PARAM):
        raise SignedLinkRefused(LinkRefusal.MISSING_TIMESTAMP)
    if not values.get(NONCE_PARAM):
        raise SignedLinkRefused(LinkRefusal.MISSING_NONCE)
    expected = sign_link(pairs, secret).encode()
    presented = given.lower().encode() if _HEX_SIGNATURE.fullmatch(given) else b"-" * len(expected)
    if not hmac.compare_digest(presented, expected):
        raise SignedLinkRefused(LinkRefusal.BAD_SIGNATURE)
    ts_text = values[TIMESTAMP_PARAM]
    if not _TIMESTAMP.fullmatch(ts_text):
        raise SignedLinkRefused(LinkRefusal.BAD_TIMESTAMP)
    if abs(now - int(ts_text)) > tolerance_seconds:
        raise SignedLinkRefused(LinkRefusal.STALE_TIMESTAMP)
    nonce = values[NONCE_PARAM]
    if not _NONCE.fullmatch(nonce):
        raise SignedLinkRefused(LinkRefusal.BAD_NONCE)
    signed = {name: value for name, value in pairs if name != SIGNATURE_PARAM}
    return SignedLink(params=signed, ts=int(ts_text), nonce=nonce)


def signed_url(base_url: str, params: dict[str, str], *, secret: str, now: float) -> str:
    """A fresh link as the Vertical Solution makes one: params, ts, a new nonce, sig."""
    stamped = [*params.items(), (TIMESTAMP_PARAM, str(int(now)))]
    stamped.append((NONCE_PARAM, secrets.token_urlsafe(12)))
    query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in stamped)
    return f"{base_url}?{query}&{SIGNATURE_PARAM}={sign_link(stamped, secret)}"
