"""HTTP helpers the clients share."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import aiohttp


def parse_retry_after(value: str | None, *, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header: either delta-seconds or an HTTP date (counted from
    ``clock``, injectable so a test need not race the wall clock)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - clock())


async def json_body(response: aiohttp.ClientResponse) -> dict[str, object]:
    """The JSON object a response carries, or {} for anything else (Zoho errors are not JSON)."""
    try:
        body: object = await response.json(content_type=None)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
