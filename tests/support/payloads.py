"""Zoho Billing webhook payloads for the tests, read from literal JSON files.

The files in ``tests/fixtures/payloads/`` are Zoho's shapes written out by hand from
docs/contracts.md §3 (one per event kind the broker handles; README.md there names the sources).
The tests start from them and fill in only the ids and fields a test chooses, so a change to the
simulators' own payload builder cannot quietly change what the tests send: the builder is held to
these files, not the other way round.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
# The shape a subscription event of a type without its own file takes (Zoho sends one body
# shape for every subscription_* event).
DEFAULT_SUBSCRIPTION_EVENT = "subscription_created"


def payload_names() -> list[str]:
    """The event types there is a literal payload for, by file name."""
    return sorted(path.stem for path in PAYLOADS.glob("*.json"))


@cache
def _read(event_type: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((PAYLOADS / f"{event_type}.json").read_text())
    return document


def literal_payload(event_type: str) -> dict[str, Any]:
    """A fresh copy of the literal payload of ``event_type``, safe to change."""
    return copy.deepcopy(_read(event_type))


def subscription_payload(event_type: str) -> dict[str, Any]:
    """A literal payload that carries a subscription: the file of ``event_type`` when it has one
    with a subscription in it, else the default shape (a refund's own file has none, and a test
    that sends a refund carrying a subscription wants the subscription)."""
    own = (PAYLOADS / f"{event_type}.json").is_file()
    if own and "subscription" in _read(event_type)["data"]:
        document = literal_payload(event_type)
    else:
        document = literal_payload(DEFAULT_SUBSCRIPTION_EVENT)
    document["event_type"] = event_type
    return document


def set_custom_field(fields: list[dict[str, Any]], label: str, value: str | None) -> None:
    """Give the custom field labelled ``label`` its value, or take it out when ``value`` is None."""
    fields[:] = [
        {**field, "value": value} if field["label"] == label else field
        for field in fields
        if field["label"] != label or value is not None
    ]
