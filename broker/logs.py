"""Structured logging: JSON lines in production, readable lines on a terminal, secrets never.

Every event passes through ``SecretRedactor`` last, so a secret that slips into any field (a URL
with ``zapikey=`` in its query, an exception message) is replaced before it is rendered.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from broker.redaction import REDACTED, Redactor, redact_zapikey_pairs

__all__ = ["REDACTED", "SecretRedactor", "configure_logging", "redact_url"]


def redact_url(url: str) -> str:
    """Hide the zapikey in a URL's query string."""
    return redact_zapikey_pairs(url)


class SecretRedactor:
    """structlog processor that scrubs known secret values (in every encoding) and zapikeys."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.scrub = Redactor(secrets)

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        # Every other value (a URL object, an exception) would be rendered by repr() later, with
        # whatever secret it holds: render it now, scrubbed.
        return self.scrub(str(value))

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(value) for key, value in event_dict.items()}


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once per process (called from the CLI, never at import)."""
    stream = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # aiohttp's own access log is replaced by our request line (which never shows query strings).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
