"""``[store]``: where the broker keeps its state (a SQLite file or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator

from broker.config.base import Section

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class StoreSettings(Section):
    """Where the broker keeps its state: a SQLite file (one process) or PostgreSQL (replicas).

    ``url`` is ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or
    ``postgresql://user@host:port/db``. Unset, it is the SQLite file at ``path``. A URL may hold
    a password, so it is a secret: give it with ``BROKER_STORE__URL_FILE`` in production.
    """

    url: SecretStr | None = None
    path: Path = Path("broker.db")
    # FULL survives power loss, NORMAL only process crashes; group commit keeps FULL affordable.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Most write jobs folded into one transaction (one fsync) when requests arrive together.
    group_commit_max: int = Field(256, ge=1, le=10_000)
    # PostgreSQL: connections (and threads running store jobs) per process.
    pool_size: int = Field(10, ge=1, le=200)
    # PostgreSQL: how long to wait for a connection before answering 503.
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _url_names_a_backend(self) -> StoreSettings:
        if self.url is None:
            return self
        url = self.url.get_secret_value()
        if url.startswith(SQLITE_PREFIX):
            if len(url) == len(SQLITE_PREFIX):
                raise ValueError("store.url sqlite:/// needs a file path after it")
            self.path = Path(url.removeprefix(SQLITE_PREFIX))
            self.url = None
        elif not url.startswith(POSTGRES_PREFIXES):
            raise ValueError(
                "store.url must start with sqlite:/// (a file) or postgresql:// (a server)"
            )
        return self

    def secrets(self) -> list[str]:
        """The URL and its password (a URL in a log line may be re-quoted or cut short)."""
        url = self.postgres_url
        if url is None:
            return []
        password = urlsplit(url).password
        return [url, *([unquote(password), password] if password else [])]

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL URL, or None when the store is the SQLite file at ``path``."""
        return None if self.url is None else self.url.get_secret_value()
