"""What Zoho's ids look like, defined once and checked before an id is used anywhere.

Billing ids (subscription, customer, plan, event) are decimal numbers of up to 19 digits in every
payload and document we know of (docs/contracts.md §3); we allow up to 32 in case they grow.
zuid and zgid are decimal too, at most 20 digits (a 64-bit number). ``str.isdigit`` is not a
check: it accepts "१२" and "²", which no Zoho id holds and no URL path should. Hosted-page ids
are opaque tokens, so they may also hold letters, ``-`` and ``_``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import quote

from broker.errors import InvalidIdentifier

ZOHO_ID = re.compile(r"[0-9]{1,32}")
USER_ID = re.compile(r"[0-9]{1,20}")  # zuid, zgid
HOSTED_PAGE_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")
# A webhook's event_id (and a billing product id) is opaque text to us; Zoho's are 19 digits.
# The bound keeps a 10,000-character "id" out of the database, the logs and every page.
MAX_OPAQUE_ID_CHARS = 64


class IdKind(StrEnum):
    """What an id from outside must look like, with the limit a refusal names."""

    OPAQUE = "opaque"  # event_id, product_id: any text, 1-64 characters
    ZOHO = "zoho"  # subscription, customer, plan: ASCII digits, 1-32
    USER = "user"  # zuid, zgid: ASCII digits, 1-20


def id_problem(kind: IdKind, value: str) -> str | None:
    """What is wrong with ``value`` as an id of ``kind`` (never echoing it), or None."""
    if kind is IdKind.OPAQUE:
        if not value.strip():
            return "must not be empty"
        if len(value) > MAX_OPAQUE_ID_CHARS:
            return f"must be at most {MAX_OPAQUE_ID_CHARS} characters (this one has {len(value)})"
        return None
    pattern, most = (ZOHO_ID, 32) if kind is IdKind.ZOHO else (USER_ID, 20)
    if pattern.fullmatch(value) is None:
        return (
            f"must be ASCII digits only, 1 to {most} of them (this one has {len(value)} characters)"
        )
    return None


def checked_id(field: str, value: str, kind: IdKind) -> str:
    """``value`` if it is an id of ``kind``; else InvalidIdentifier (400) naming the field and
    the limit, so an oversized or odd id is refused before it is stored, queried or shown."""
    problem = id_problem(kind, value)
    if problem is not None:
        raise InvalidIdentifier(
            f"{field} {problem}",
            hint="use an id as the broker shows it (follow a link from a console list)",
        )
    return value


def is_whole_number(text: str, *, max_digits: int = 18) -> bool:
    """ASCII digits only, at most ``max_digits`` (our own row ids, page numbers)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def is_zoho_id(text: str) -> bool:
    return ZOHO_ID.fullmatch(text) is not None


def is_user_id(text: str) -> bool:
    return USER_ID.fullmatch(text) is not None


def path_segment(kind: str, value: str, pattern: re.Pattern[str] = ZOHO_ID) -> str:
    """``value`` ready to put in a URL path, or InvalidIdentifier if it is not an id at all."""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidIdentifier(
            f"the {kind} id {str(value)[:40]!r} is not a Zoho id",
            hint="Zoho ids are digits; this one did not come from Zoho",
        )
    return quote(value, safe="")
