"""SQLite access: one writer thread with group commit, one reader thread, both off the event loop.

Every write is a plain function ``fn(db) -> T`` run on the writer thread. Jobs that queue up while a
transaction is being committed are folded into the next transaction, each inside its own savepoint:
one failing job rolls back alone, and one fsync serves the whole group. A job's future resolves only
after COMMIT has returned, so "written" always means "durable".

Jobs written with ``urgent=True`` (the outcome of a platform call, which already happened outside)
wait in a lane of their own: the writer takes them before any queued ordinary job and commits them
in their own small transaction, so a crash finds few answered calls unrecorded (each of those is
sent again on restart).

This module never decides anything about subscriptions; it only runs what it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog

from broker.errors import StoreError
from broker.store.engine.lanes import WriteJob, WriteLanes
from broker.store.engine.private_files import create_private, make_private
from broker.store.engine.tx import Dialect, SqliteTx, Tx
from broker.store.migrations import apply_migrations

T = TypeVar("T")

log = structlog.get_logger(__name__)


@dataclass
class StoreStats:
    transactions: int = 0
    jobs: int = 0
    largest_group: int = 0
    urgent_transactions: int = 0  # of ``transactions``, those of the urgent lane
    failures: list[str] = field(default_factory=list)


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


class Store:
    """The broker's SQLite database, reached only through ``write`` and ``read``."""

    dialect = Dialect.SQLITE

    def __init__(self, path: Path, *, synchronous: str = "FULL", group_commit_max: int = 256):
        self.path = path
        self._synchronous = synchronous
        self._group_commit_max = group_commit_max
        self._jobs = WriteLanes()
        self._writer: threading.Thread | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reader")
        self._reader_db: SqliteTx | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._reopen = False  # set by the writer thread after an error that can stick
        self.stats = StoreStats()

    @property
    def local_directory(self) -> Path:
        return self.path.parent

    def on_wakeup(self, callback: Callable[[], None]) -> None:
        """Nothing to listen to: only this process writes to the file."""

    async def open(self) -> None:
        """Start the writer thread and bring the schema up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = threading.Thread(target=self._writer_main, name="store-writer", daemon=True)
        self._writer.start()
        await asyncio.get_running_loop().run_in_executor(None, self._opened.wait)
        if self._open_error is not None:
            raise StoreError(
                f"cannot open the database at {self.path}",
                hint="check the path exists, is writable and is not on a network filesystem",
            ) from self._open_error

    async def close(self) -> None:
        if self._writer is not None:
            self._jobs.close()
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        self._reader.submit(self._close_reader).result()
        self._reader.shutdown(wait=True)

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool = False) -> T:
        """Run ``fn`` in a transaction on the writer thread; return once it is durable.

        ``urgent``: ``fn`` records something that already happened outside the database (a
        platform call's answer); it goes before queued ordinary jobs, in a small transaction.
        """
        if self._writer is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(WriteJob(fn, future, loop), urgent=urgent)
        return await future

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

    def _writer_main(self) -> None:
        try:
            db = connect(self.path, synchronous=self._synchronous)
            apply_migrations(db)
        except (sqlite3.Error, OSError) as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while (taken := self._jobs.next_group(self._group_commit_max)) is not None:
                group, urgent = taken
                if self._reopen:
                    db = self._reconnect(db)
                self._commit_group(db, group)
                self.stats.urgent_transactions += urgent
        finally:
            db.close()

    def _reconnect(self, db: SqliteTx) -> SqliteTx:
        """A fresh connection, so a disk made writable again is used without a restart."""
        try:
            fresh = connect(self.path, synchronous=self._synchronous)
        except (sqlite3.Error, OSError) as exc:
            log.error("store.reopen_failed", error=type(exc).__name__)
            return db  # keep the old one; the next group tries again
        db.close()
        self._reopen = False
        log.info("store.reopened")
        return fresh

    def _note_failure(self, exc: BaseException) -> None:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, OSError) or (code is not None and code & 0xFF in _REOPEN_AFTER):
            self._reopen = True

    def _commit_group(self, db: SqliteTx, group: list[WriteJob]) -> None:
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            for index, job in enumerate(group):
                # A savepoint per job: one job's failure rolls back only its own writes.
                db.conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(db)
                except Exception as exc:  # noqa: BLE001 - handed back to the awaiting caller
                    job.error = exc
                    if unavailable_reason(exc) is not None:
                        # A full or read-only disk is the operator's to fix and the caller's
                        # to retry later (503), not a bug in the job (500).
                        self._note_failure(exc)
                        log.error(
                            "store.write_failed",
                            error=getattr(exc, "sqlite_errorname", type(exc).__name__),
                        )
                        job.error = store_error(exc, "the database could not take the change")
                    if db.conn.in_transaction:
                        db.conn.execute("ROLLBACK TO SAVEPOINT job")
                    else:
                        # The error ended the whole transaction: the jobs before this one
                        # were rolled back with it and must not be reported as written.
                        for earlier in group[:index]:
                            if earlier.error is None:
                                earlier.error = StoreError("the database rolled back the change")
                        db.conn.execute("BEGIN IMMEDIATE")
                        continue
                db.conn.execute("RELEASE SAVEPOINT job")
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._note_failure(exc)
            with contextlib.suppress(sqlite3.Error):
                if db.conn.in_transaction:
                    db.execute("ROLLBACK")
            log.error(
                "store.commit_failed",
                error=getattr(exc, "sqlite_errorname", type(exc).__name__),
                reason=unavailable_reason(exc),
                jobs=len(group),
            )
            for job in group:
                job.error = store_error(exc, "the database could not commit the change")
        self.stats.transactions += 1
        self.stats.jobs += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        settle_group(group)


def settle_group(group: list[WriteJob]) -> None:
    """Hand each job's result or error to its caller: one wake-up of each event loop per
    group, not per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[WriteJob]] = {}
    for job in group:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_settle, jobs)


def _settle(jobs: list[WriteJob]) -> None:
    for job in jobs:
        if job.future.done():  # the caller went away; the write stands regardless
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


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
