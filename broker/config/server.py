"""``[server]``: where the broker listens and how much of a request it takes."""

from __future__ import annotations

from pydantic import Field

from broker.config.base import Section


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Closes the request body at this size: Zoho's payloads are a few kilobytes.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # A body still arriving this long after the request began is answered 408 and the connection
    # closed: without it, a client that stalls mid-body holds a connection for as long as it likes.
    body_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Behind a TLS proxy, trust X-Forwarded-Proto for cookie and redirect decisions.
    behind_tls_proxy: bool = False
