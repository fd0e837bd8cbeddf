"""What Zoho's ids look like, defined once and checked before an id is used anywhere.

Billing ids (subscription, customer, plan, event) are decimal numbers of up to 19 digits in every
payload and document we know of (docs/contracts.md §3); we allow up to 32 in case they grow.
zuid and zgid are decimal too, at most 20 digits (a 64-bit number). ``str.isdigit`` is not a
check: it accepts "१२" and "²", which no Zoho id holds and no URL path should. Hosted-page ids
are opaque tokens, so they may also hold letters, ``-`` and ``_``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from broker.errors import InvalidIdentifier

ZOHO_ID = re.compile(r"[0-9]{1,32}")
USER_ID = re.compile(r"[0-9]{1,20}")  # zuid, zgid
HOSTED_PAGE_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")


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
