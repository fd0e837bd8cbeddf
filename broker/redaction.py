"""Scrubbing secrets out of text before it is stored, logged or shown.

The zapikey rides in the Developer Console URL's query string, and a platform that echoes the
request URL in an error body hands it straight back to us. So every response excerpt, stored URL
and log field passes through a ``Redactor`` before it leaves memory, and operator output passes
through one again (rows written before this module existed may still hold a key).

A ``Redactor`` hides each configured secret in every form it is likely to come back in (as is,
percent-encoded either way, JSON- or HTML-escaped), and the value of any ``zapikey`` pair even
when the secret is not known (``zapikey=...``, ``zapikey%3D...``, ``"zapikey": "..."``).
``redacted`` does the same through data about to be printed (settings, stored rows).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import overload
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

REDACTED = "***"
# The value after `zapikey=`, `zapikey%3D`, `zapikey: ` or `"zapikey": "`, up to whatever ends a
# query value, a JSON string or an HTML attribute (and `%26`, an encoded `&`). Case-insensitive
# because query parameter names travel in any case.
_ZAPIKEY_PAIR = re.compile(
    r"""(?ix)
    (zapikey (?: %3D | ["']? \s* [:=] \s* ["']? ))
    (?: (?!%26) [^&#\s"'<>\\,;}\]] )*
    """
)
# Short "secrets" would scrub ordinary words; settings require much longer ones anyway.
MIN_SECRET_CHARS = 4


def redact_zapikey_pairs(text: str) -> str:
    """Hide the value of every zapikey pair (query string, JSON, header echo)."""
    if "zapikey" not in text.lower():
        return text  # the common case: skip the regex
    return _ZAPIKEY_PAIR.sub(rf"\g<1>{REDACTED}", text)


def secret_forms(secret: str) -> set[str]:
    """The ways a secret comes back from the other side of the wire."""
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    # Percent-encoding is case-insensitive in its hex digits (%2F and %2f).
    encoded |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), e) for e in encoded}
    escaped = {json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, quote=False)}
    return {form for form in {secret, *encoded, *escaped} if len(form) >= MIN_SECRET_CHARS}


class Redactor:
    """Replaces known secrets (in every form) and any zapikey pair's value with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                forms |= secret_forms(secret)
        # Longest first, so a secret that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return redact_zapikey_pairs(text)

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self(text)


@overload
def redacted(value: dict[str, object], redact: Redactor) -> dict[str, object]: ...
@overload
def redacted(value: list[dict[str, object]], redact: Redactor) -> list[dict[str, object]]: ...
@overload
def redacted(value: object, redact: Redactor) -> object: ...


def redacted(value: object, redact: Redactor) -> object:
    """``value`` with every secret hidden: a ``SecretStr`` as ``***`` (an empty one stays empty,
    so "not set" still shows), every string (and bytes, as text) through ``redact``."""
    if isinstance(value, SecretStr):
        return REDACTED if value.get_secret_value() else ""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", errors="replace"))
    if isinstance(value, dict):
        return {key: redacted(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, redact) for item in value]
    return value
