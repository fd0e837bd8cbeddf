"""PostgreSQL for the operator's commands: one direct connection, not the service's pool.

The commands (``broker migrate``, ``deliveries``, ``ops``, ``replay``, ``check-db``,
``copy-store``) run once and exit, so they need no pool, no threads and no LISTEN: a single
autocommit connection, on which the caller opens its own transactions (``transaction``).
What they print of the URL goes through ``shown_url`` (never the password).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg

from broker.store.engine.postgres import PgTx, register_loaders
from broker.store.migrations.runner import (
    MIGRATIONS_TABLE,
    applied_migrations,
    apply_migrations,
    pending_migrations,
)
from broker.store.pg_schema import begin_write

CONNECT_TIMEOUT_SECONDS = 10


class PgUnreachable(Exception):
    """The server did not take a connection; the message is safe to print (no password)."""


def shown_url(url: str) -> str:
    """The URL as it may be printed: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}"))


def _scrubbed(message: str, url: str) -> str:
    """``message`` without the URL or its password, in case the driver echoed either."""
    password = urlsplit(url).password
    message = message.replace(url, shown_url(url))
    for secret in filter(None, {password, unquote(password or "")}):
        message = message.replace(secret, "***")
    return message.strip()


@contextlib.contextmanager
def connect(url: str, *, timeout: int = CONNECT_TIMEOUT_SECONDS) -> Iterator[PgTx]:
    """One autocommit connection, closed on the way out; ``PgUnreachable`` says why not."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=timeout)
    except psycopg.Error as exc:
        raise PgUnreachable(
            f"cannot reach the PostgreSQL database at {shown_url(url)}: "
            f"{_scrubbed(str(exc), url) or type(exc).__name__}"
        ) from None  # the driver's exception may carry the DSN; it stays out of tracebacks
    register_loaders(conn)
    with conn:
        yield PgTx(conn)


@contextlib.contextmanager
def transaction(tx: PgTx) -> Iterator[PgTx]:
    """A write as the replicas' writers make it (``begin_write``) … COMMIT; ROLLBACK when the
    body raises. Taking their lock, an operator's change never races a running broker."""
    begin_write(tx.conn)
    try:
        yield tx
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            tx.conn.execute("ROLLBACK")
        raise
    tx.flush_notifications()
    tx.conn.execute("COMMIT")


def migrate(tx: PgTx) -> list[str]:
    """Apply the pending migrations (under the advisory lock replicas take); return them."""
    return apply_migrations(tx)


def schema_status(tx: Any) -> tuple[list[str], list[str]] | None:
    """(applied, pending) migration names; None when the database has no broker schema."""
    exists = tx.select_one("SELECT to_regclass(?) AS t", [MIGRATIONS_TABLE])
    if exists is None or exists["t"] is None:
        return None
    applied = applied_migrations(tx)
    return applied, pending_migrations(applied)
