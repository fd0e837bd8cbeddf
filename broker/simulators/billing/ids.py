"""How ids are typed in a webhook body: Zoho sends ``event_id``, ``plan.plan_id`` and other ids as
JSON strings in some payloads and as JSON numbers (up to 18 digits, beyond a float's precision) in
others (docs/contracts.md section 3). The simulator can do either, or alternate, so the broker is
proved to read both. Pure.
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any


class IdStyle(StrEnum):
    STRINGS = "strings"
    NUMBERS = "numbers"
    ALTERNATE = "alternate"  # numbers in every second event, strings in the others


def _number(holder: dict[str, Any], key: str) -> None:
    value = holder.get(key)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        holder[key] = int(value)


def styled(payload: dict[str, Any], style: IdStyle, index: int) -> dict[str, Any]:
    """``payload`` with its ids as numbers when ``style`` (and the event's ``index``) say so."""
    if style is IdStyle.STRINGS or (style is IdStyle.ALTERNATE and index % 2 == 0):
        return payload
    document = copy.deepcopy(payload)
    _number(document, "event_id")
    subscription = document.get("data", {}).get("subscription")
    if isinstance(subscription, dict):
        _number(subscription, "product_id")
        for key in ("plan", "previous_attribute"):
            if isinstance(subscription.get(key), dict):
                _number(subscription[key], "plan_id")
        for line in subscription.get("addons", []):
            _number(line, "addon_id")
    return document
