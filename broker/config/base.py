"""What every settings section shares, and the checks more than one of them makes."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # A misspelt key must fail loudly, not leave a default silently in force.
    model_config = ConfigDict(extra="forbid")


# An origin as a Content-Security-Policy source: scheme, host (a leading "*." allowed), port.
# Nothing else, so a setting can never smuggle another directive (";") or source (" ").
_ORIGIN = re.compile(
    r"^https?://(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$"
)


def origin_url(value: str) -> str:
    """An http(s) origin such as ``https://pay.example.com`` (no path), lower-cased."""
    origin = value.strip().rstrip("/").lower()
    if not _ORIGIN.fullmatch(origin):
        raise ValueError(
            f"{value!r} is not an origin: give scheme and host only, such as https://pay.example.com"
        )
    return origin


def http_url(value: str | None) -> str | None:
    """An http(s) URL without its trailing slash, for the ``*_url`` validators."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/") if value else value
