"""SQLite access: one writer thread with group commit, one reader thread, both off the event loop.

How jobs are grouped, retried and settled is ``writer``'s, the same as on PostgreSQL; this module
says how a group opens on a SQLite connection (``BEGIN IMMEDIATE``: the file's one write lock,
taken before anything is read, so no transaction can lose a race and none is run again) and which
errors mean the disk or the file is in trouble (503). ``SQLITE_BUSY`` can only come after
``busy_timeout`` (30 s) spent waiting for another process's writer: it is reported as busy.

This module never decides anything about subscriptions; it only runs what it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from broker.errors import StoreError
from broker.store.engine.private_files import create_private, make_private
from broker.store.engine.tx import Dialect, SqliteTx, Tx
from broker.store.engine.writer import GroupWriter, StoreStats

T = TypeVar("T")

log = structlog.get_logger(__name__)


# SQLite's primary result codes that mean "the disk or the file is in trouble, try later",
# and what to tell the caller. The others (a constraint, a bug in a job) stay as they are.
_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY: "the database is busy",
    sqlite3.SQLITE_LOCKED: "the database is locked",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_IOERR: "the database disk failed a read or write",
    sqlite3.SQLITE_FULL: "the database disk is full",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
}
# After these the connection itself may be stuck (a read-only file handle): open a new one.
_REOPEN_AFTER = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN})
STORE_HINT = "the operator must free disk space or make the database writable; retry later"


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot take writes now, if ``exc`` says so (None: some other error)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None:
        return _UNAVAILABLE.get(code & 0xFF)
    if isinstance(exc, OSError):
        return f"the database disk failed ({exc.strerror or type(exc).__name__})"
    return None


def store_error(exc: BaseException, fallback: str) -> StoreError:
    """A StoreError (503) naming what is wrong with the disk, caused by ``exc``."""
    error = StoreError(unavailable_reason(exc) or fallback, hint=STORE_HINT)
    error.__cause__ = exc
    return error


def connect(path: Path, *, synchronous: str = "FULL") -> SqliteTx:
    """Open a connection configured the way every broker connection must be."""
    make_private(path)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return SqliteTx(conn)


class SqliteWriteSession:
    """``writer``'s view of one SQLite connection (the store's writer's, or a command's)."""

    def __init__(self, db: SqliteTx, reconnect: Callable[[], SqliteTx] | None = None):
        self.db = db
        self._reconnect = reconnect
        self._reopen = False  # set after an error that can stick to the connection

    def begin(self) -> Tx:
        if self._reopen and self._reconnect is not None:
            self._fresh_connection(self._reconnect)
        self.db.conn.execute("BEGIN IMMEDIATE")
        return self.db

    def commit(self, tx: Tx) -> None:
        tx.flush_notifications()
        self.db.conn.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")

    def lost_race(self, exc: BaseException) -> bool:
        """Never: ``BEGIN IMMEDIATE`` holds the write lock before the first read."""
        return False

    def unavailable(self, exc: BaseException) -> StoreError | None:
        if unavailable_reason(exc) is None:
            return None
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, OSError) or (code is not None and code & 0xFF in _REOPEN_AFTER):
            self._reopen = True
        return store_error(exc, "the database could not take the change")

    def error_name(self, exc: BaseException) -> str:
        return str(getattr(exc, "sqlite_errorname", None) or type(exc).__name__)

    def close(self) -> None:
        self.db.close()

    def _fresh_connection(self, reconnect: Callable[[], SqliteTx]) -> None:
        """A fresh connection, so a disk made writable again is used without a restart."""
        try:
            fresh = reconnect()
        except (sqlite3.Error, OSError) as exc:
            log.error("store.reopen_failed", error=type(exc).__name__)
            return  # keep the old one; the next group tries again
        self.db.close()
        self.db = fresh
        self._reopen = False
        log.info("store.reopened")


class SqliteStore:
    """The broker's SQLite database, reached only through ``write`` and ``read``.

    ``migrate`` brings a connection's schema up to date; it runs once, on the writer's
    connection, when the store opens.
    """

    dialect = Dialect.SQLITE

    def __init__(
        self,
        path: Path,
        *,
        migrate: Callable[[SqliteTx], object],
        synchronous: str = "FULL",
        group_commit_max: int = 256,
    ):
        self.path = path
        self._migrate = migrate
        self._synchronous = synchronous
        self._writer = GroupWriter(
            self._open_session, group_max=group_commit_max, name="store-writer"
        )
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reader")
        self._reader_db: SqliteTx | None = None

    @property
    def stats(self) -> StoreStats:
        return self._writer.stats

    @property
    def local_directory(self) -> Path:
        return self.path.parent

    def on_wakeup(self, callback: Callable[[], None]) -> None:
        """Nothing to listen to: only this process writes to the file."""

    async def open(self) -> None:
        """Start the writer thread and bring the schema up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        error = await asyncio.get_running_loop().run_in_executor(None, self._writer.start)
        if error is not None:
            raise StoreError(
                f"cannot open the database at {self.path}",
                hint="check the path exists, is writable and is not on a network filesystem",
            ) from error

    async def close(self) -> None:
        if self._writer.running:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
        self._reader.submit(self._close_reader).result()
        self._reader.shutdown(wait=True)

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool = False) -> T:
        """Run ``fn`` in a transaction on the writer thread; return once it is durable.

        ``urgent``: ``fn`` records something that already happened outside the database (a
        platform call's answer); it goes before queued ordinary jobs, in a small transaction.
        """
        return await self._writer.write(fn, urgent=urgent)

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` on the reader thread, which sees every committed write."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._run_read, fn)

    def _run_read(self, fn: Callable[[Tx], T]) -> T:
        if self._reader_db is None:
            self._reader_db = connect(self.path, synchronous=self._synchronous)
        return fn(self._reader_db)

    def _close_reader(self) -> None:
        if self._reader_db is not None:
            self._reader_db.close()
            self._reader_db = None

    def _open_session(self) -> SqliteWriteSession:
        def reconnect() -> SqliteTx:
            return connect(self.path, synchronous=self._synchronous)

        db = reconnect()
        try:
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return SqliteWriteSession(db, reconnect)


def backup(source: Path, destination: Path) -> None:
    """Copy a live database consistently with SQLite's online backup API."""
    if destination.exists():
        raise FileExistsError(f"{destination} exists; choose a new file name")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        create_private(destination)  # 0600 before a byte is copied into it
    except FileExistsError as exc:
        raise FileExistsError(f"{destination} exists; choose a new file name") from exc
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(str(destination))
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
