"""Reading amounts billing sends, which may be numbers or formatted text ("1,200.00").

Pure. An amount is a finite ``Decimal`` of zero or more, or ``None`` when it cannot be read
safely: a page then says the figure is not available rather than guessing or failing.
Thousands separators are tolerated only as commas in groups of three with a point for
decimals; a decimal comma ("1.200,00") is ambiguous, so it is not guessed.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_PLAIN = re.compile(r"^\d+(\.\d+)?$")
_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_amount(value: object) -> Decimal | None:
    """The amount ``value`` stands for, or None when it is not a readable price."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal | int | float):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if _GROUPED.match(text):
        text = text.replace(",", "")
    if not _PLAIN.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # the pattern admits only digits; kept for safety
        return None
