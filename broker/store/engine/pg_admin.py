"""PostgreSQL for the operator's commands: one direct connection, not the service's pool.

The commands (``broker migrate``, ``deliveries``, ``ops``, ``replay``, ``check-db``,
``copy-store``) run once and exit, so they need no pool, no threads and no LISTEN: a single
autocommit connection, on which a write runs as a job of its own (``write``: the same group
loop the replicas' writers run, a group of one). What they print of the URL goes through
``shown_url`` (never the password).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg

from broker.store.engine.postgres import PgTx, PgWriteSession, register_loaders
from broker.store.engine.tx import Tx
from broker.store.engine.writer import run_job

T = TypeVar("T")

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


def write(tx: PgTx, job: Callable[[Tx], T]) -> T:
    """Run ``job`` as the replicas' writers run theirs (``begin_write``, SERIALIZABLE, run again
    after a lost race): taking their lock, an operator's change never races a running broker.
    Raises the job's own error, or a ``StoreError`` when the database did not take it."""
    return run_job(PgWriteSession.on(tx), job)
