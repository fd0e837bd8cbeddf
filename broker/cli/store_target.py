"""Which store the operator's commands open, and how: the SQLite file or PostgreSQL.

The store is, in order: ``--db`` (a file path, ``sqlite:///path`` or ``postgresql://...``);
``BROKER_STORE__URL`` (or its ``_FILE``); ``BROKER_STORE__PATH``; the config file's
``store.url``, then ``store.path``; ``broker.db``. The commands need only this, not the
platform secrets, so nothing else of the settings is read. ``open_existing`` gives a ``Tx``
on either backend (autocommit: each read sees committed data); ``run_write`` runs a job through
the store's own write loop (``engine.writer.run_job``), as a group of one, with the running
brokers' write lock.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

from broker.config import POSTGRES_PREFIXES, SQLITE_PREFIX, config_file
from broker.errors import StoreError
from broker.secret_env import SecretFileError, resolve_secret_files
from broker.store.engine import sqlite
from broker.store.engine.tx import SqliteTx, Tx
from broker.store.engine.writer import WriteSession, run_job
from broker.store.opening import postgres_schema_status

StoreTarget = Path | str  # a SQLite file, or a PostgreSQL URL
T = TypeVar("T")


def is_postgres(target: StoreTarget) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_PREFIXES)


def parse_target(value: str) -> StoreTarget:
    """``--db``'s value (or a setting's): a PostgreSQL URL stays text, anything else a path."""
    if value.startswith(POSTGRES_PREFIXES):
        return value
    return Path(value.removeprefix(SQLITE_PREFIX))


def store_target(args: argparse.Namespace, environ: Mapping[str, str]) -> StoreTarget:
    db = getattr(args, "db", None)  # absent when a command's --db defaults to SUPPRESS
    if db is not None:
        return parse_target(str(db))
    try:
        env = resolve_secret_files(
            {k: v for k, v in environ.items() if k.upper().startswith("BROKER_STORE__")}
        )
    except SecretFileError as exc:
        _exit(str(exc))
    for name in ("BROKER_STORE__URL", "BROKER_STORE__PATH"):
        if env.get(name):
            return parse_target(env[name])
    config = config_file(getattr(args, "config", None), environ)
    if config is not None:
        with config.open("rb") as handle:
            store = tomllib.load(handle).get("store", {})
        for key in ("url", "path"):
            if store.get(key):
                return parse_target(str(store[key]))
    return Path("broker.db")


@contextmanager
def open_existing(target: StoreTarget) -> Iterator[Tx]:
    """The store, which must exist already; closed on the way out. Exits with a clear
    message (never the password) when it is not there."""
    if is_postgres(target):
        from broker.store.engine import pg_admin  # psycopg loads only for PostgreSQL

        url = str(target)
        try:
            with pg_admin.connect(url) as tx:
                if postgres_schema_status(tx) is None:
                    _exit(f"no broker schema in {pg_admin.shown_url(url)}: run `broker migrate`")
                yield tx
        except pg_admin.PgUnreachable as exc:
            _exit(str(exc))
        return
    path = Path(target)
    if not path.is_file():
        _exit(f"no database at {path}: pass --db or set BROKER_STORE__PATH")
    db = sqlite.connect(path)
    try:
        yield db
    finally:
        db.conn.close()


def run_write(db: Tx, job: Callable[[Tx], T]) -> T:
    """Run ``job`` as one transaction, as a running broker's writer runs its jobs: the same
    loop, the same write lock (SQLite: ``BEGIN IMMEDIATE``, waiting out busy_timeout for the
    broker's writer; PostgreSQL: SERIALIZABLE and ``broker_write_lock``), run again after a lost
    race. Returns what ``job`` returns and raises what it raises (nothing of it written); exits
    with the reason when the database does not take the change."""
    try:
        return run_job(_session(db), job)
    except StoreError as exc:
        _exit(f"{exc.message}: nothing was changed; {exc.hint or 'run the command again'}")


def _session(db: Tx) -> WriteSession:
    if isinstance(db, SqliteTx):
        return sqlite.SqliteWriteSession(db)
    from broker.store.engine.postgres import PgTx, PgWriteSession

    assert isinstance(db, PgTx)
    return PgWriteSession.on(db)


def _exit(message: str) -> NoReturn:
    """End the command with ``message`` on stderr and exit status 1 (no traceback)."""
    print(message, file=sys.stderr)
    raise SystemExit(1)


def sqlite_source(path: Path) -> sqlite3.Connection:
    """A plain connection to read a SQLite file (no pragma that writes, such as WAL mode)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
