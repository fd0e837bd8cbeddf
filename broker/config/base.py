"""What every settings section shares, and the checks more than one of them makes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # A misspelt key must fail loudly, not leave a default silently in force.
    model_config = ConfigDict(extra="forbid")


def http_url(value: str | None) -> str | None:
    """An http(s) URL without its trailing slash, for the ``*_url`` validators."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/") if value else value
