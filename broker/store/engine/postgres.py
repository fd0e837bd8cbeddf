"""PostgreSQL access for replicas: one writer per process, and a pool of connections for reads.

How jobs are grouped, retried and settled is ``writer``'s, the same as on SQLite; this module says
how a group opens on a PostgreSQL connection and what its errors mean. Every writing transaction
(each replica's writer, and the operator's commands) is SERIALIZABLE and first takes ``LOCK TABLE
broker_write_lock`` (``begin_write``), so writers of all replicas run one after another, as
SQLite's ``BEGIN IMMEDIATE`` makes them. Measured before that lock: one transaction per job on a
pool of ten connections had most jobs aborted as possible anomalies (jobs of different
subscriptions share index pages; 1,431 re-runs for 600 webhooks); one writer per process without
the lock still had two replicas' groups abort each other past any retry limit. The lock takes no
snapshot, so a group's snapshot starts after the previous holder committed. A race lost anyway
(SQLSTATE 40001/40P01) runs the group again (``writer``); SERIALIZABLE stays as the guarantee.

psycopg 3 (sync) runs the same job functions sqlite3 runs, on threads, so the SQL is written
once; its pool checks a connection before lending it, so a database that comes back is used
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TypeVar

import psycopg
import psycopg_pool
import structlog
from psycopg import sql as pgsql
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.rows import TupleRow

from broker.errors import StoreError
from broker.store.engine.pg_sql import to_psycopg
from broker.store.engine.tx import Cursor, Dialect, Params, Tx
from broker.store.engine.writer import GroupWriter, StoreStats

T = TypeVar("T")

log = structlog.get_logger(__name__)

MAX_TRANSLATED = 2000
# Every writing transaction locks this (empty) table first: see ``begin_write``.
WRITE_LOCK_TABLE = "broker_write_lock"
# SQLSTATEs after which the whole group is run again: it lost a race with another transaction.
RACE_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
PG_HINT = "the operator must bring PostgreSQL back (is it up, reachable, not full?); retry later"
# SQLSTATE classes and codes that mean "the database cannot take this now; try later" (503).
_UNAVAILABLE_STATES = {
    "53100": "the database disk is full",
    "53200": "the database is out of memory",
    "53300": "the database has too many connections",
    "25006": "the database is read-only",
    "57P01": "the database is shutting down",
    "57P02": "the database is shutting down",
    "57P03": "the database is starting up",
}


class _NumericLoader(Loader):
    """SUM and AVG of integers come back as NUMERIC; SQLite gives int or float, so do we."""

    def load(self, data: Buffer) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class _FlagDumper(Dumper):
    """A Python bool as the schema's integer flags hold it (1 or 0), as sqlite3 binds it: the
    same store code writes ``uncertain = ?`` with True on both backends."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: object) -> bytes:
        return b"1" if obj else b"0"


def pg_unavailable_reason(exc: BaseException) -> str | None:
    """Why PostgreSQL cannot take the work now, if ``exc`` says so (None: some other error)."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "the database is unreachable"
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if state in _UNAVAILABLE_STATES:
            return _UNAVAILABLE_STATES[state]
        if state.startswith("40"):  # lost every race it was run again for
            return "the database is too busy with other replicas' writes"
        if isinstance(exc, psycopg.OperationalError) or state.startswith("08"):
            return "the database is unreachable"
    return None


class PgTx(Tx):
    dialect = Dialect.POSTGRESQL

    def __init__(
        self, conn: psycopg.Connection[TupleRow], translated: dict[str, str] | None = None
    ):
        self.conn = conn
        # The store's SQL is a fixed set of strings: each is rewritten once per store (the
        # rewrite was 18% of the writer thread's time in the bench's profile).
        self._translated = {} if translated is None else translated
        self._channels: set[str] = set()

    def notify(self, channel: str) -> None:
        """Sent once per transaction, just before COMMIT (``flush_notifications``): a group of
        200 queued deliveries needs one wake-up, not 200 round trips."""
        self._channels.add(channel)

    def flush_notifications(self) -> None:
        for channel in sorted(self._channels):
            self.execute("SELECT pg_notify(?, '')", [channel])
        self._channels.clear()

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        query = self._translated.get(sql)
        if query is None:
            query = to_psycopg(sql)
            if len(self._translated) < MAX_TRANSLATED:  # a few filters build their SQL
                self._translated[sql] = query
        return self.conn.execute(query, params)


def begin_write(conn: psycopg.Connection[TupleRow]) -> None:
    """Open a writing transaction the way every broker writer must: SERIALIZABLE, then the
    write lock, which takes no snapshot, so the transaction sees everything the previous
    holder (a replica's writer, or an operator command) committed and races nobody."""
    conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
    conn.execute(f"LOCK TABLE {WRITE_LOCK_TABLE} IN EXCLUSIVE MODE")


class PgWriteSession:
    """``writer``'s view of a PostgreSQL connection: ``connect`` opens it (again, once it
    broke); ``wrap`` gives the ``PgTx`` the jobs get. No savepoints: two round trips per job."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[TupleRow]],
        wrap: Callable[[psycopg.Connection[TupleRow]], PgTx],
        *,
        owns_connection: bool = True,
    ):
        self._connect = connect
        self._wrap = wrap
        self._owns = owns_connection
        self._conn: psycopg.Connection[TupleRow] | None = None

    @classmethod
    def on(cls, tx: PgTx) -> PgWriteSession:
        """A session on a command's own connection (left open on close)."""
        return cls(lambda: tx.conn, lambda _conn: tx, owns_connection=False)

    def begin(self) -> Tx:
        conn = self._connection()
        begin_write(conn)
        return self._wrap(conn)

    def commit(self, tx: Tx) -> None:
        tx.flush_notifications()
        self._connection().execute("COMMIT")

    def rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")

    def lost_race(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate in RACE_STATES

    def unavailable(self, exc: BaseException) -> StoreError | None:
        error = unavailable_error(exc)
        if error is None and self._conn is not None and self._conn.broken:
            error = StoreError("the database is unreachable", hint=PG_HINT)
            error.__cause__ = exc
        return error

    def error_name(self, exc: BaseException) -> str:
        return type(exc).__name__

    def close(self) -> None:
        if self._owns and self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None and self._owns:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
            self._conn = None
            self._conn = self._connect()
        return self._conn


class PgStore:
    """The broker's PostgreSQL database, reached only through ``write`` and ``read``.

    ``migrate`` brings the schema up to date (it must serialise replicas that start together)
    and returns what it applied; ``wakeup_channel`` is the NOTIFY channel ``on_wakeup`` listens
    to. Both are the caller's, so this module knows no table of the broker's.
    """

    dialect = Dialect.POSTGRESQL
    local_directory = None  # the server's disk is its own; /readyz's write proves it

    def __init__(
        self,
        url: str,
        *,
        migrate: Callable[[PgTx], list[str]],
        wakeup_channel: str,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        group_commit_max: int = 256,
    ):
        self._url = url
        self._migrate = migrate
        self._wakeup_channel = wakeup_channel
        self._translated: dict[str, str] = {}  # SQL as written -> as sent (see PgTx)
        self._timeout = connect_timeout
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=connect_timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
            configure=register_loaders,
            check=psycopg_pool.ConnectionPool.check_connection,
            name="broker-store",
        )
        self._writer = GroupWriter(
            lambda: PgWriteSession(self._connect, lambda conn: PgTx(conn, self._translated)),
            group_max=group_commit_max,
            name="store-pg-writer",
        )
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="store-pg")
        self._listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._listen_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def stats(self) -> StoreStats:
        return self._writer.stats

    async def open(self) -> None:
        """Connect, and bring the schema up to date (once, even when replicas start together)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._threads, self._open)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(
                "cannot open the PostgreSQL database",
                hint="check store.url: host, port, database, user and password; and that the"
                " server accepts connections from this host",
            ) from exc

    def _open(self) -> None:
        self._pool.open(wait=True, timeout=self._timeout)
        with self._pool.connection() as conn:
            applied = self._migrate(PgTx(conn))
        if applied:
            log.info("store.migrated", applied=applied)
        error = self._writer.start()  # its connection opens with the first group
        if error is not None:
            raise error

    def _connect(self) -> psycopg.Connection[TupleRow]:
        conn = psycopg.connect(
            self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))
        )
        register_loaders(conn)
        return conn

    async def close(self) -> None:
        self._stopping.set()
        loop = asyncio.get_running_loop()
        if self._writer.running:
            await loop.run_in_executor(None, self._writer.stop)
        if self._listen_thread is not None:
            await loop.run_in_executor(None, self._listen_thread.join)
            self._listen_thread = None
        await loop.run_in_executor(None, self._pool.close)
        self._threads.shutdown(wait=True)

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool = False) -> T:
        """Run ``fn`` in a SERIALIZABLE transaction on the writer; return once committed.

        ``urgent``: ``fn`` records something that already happened outside the database (a
        platform call's answer); it goes before queued ordinary jobs, in a small transaction.
        """
        return await self._writer.write(fn, urgent=urgent)

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` on one consistent snapshot of committed data."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._read, fn)

    def _read(self, fn: Callable[[Tx], T]) -> T:
        try:
            with self._pool.connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    return fn(PgTx(conn, self._translated))
                finally:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            error = unavailable_error(exc)
            if error is None:
                raise
            raise error from exc

    @property
    def statements_translated(self) -> int:
        """Distinct SQL strings rewritten for psycopg so far: each is rewritten once per store."""
        return len(self._translated)

    @property
    def retries(self) -> int:
        """Groups run again because they lost a race with another replica's transaction."""
        return self._writer.stats.retries

    def on_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on its event loop) whenever any replica queues a delivery."""
        self._listeners.append((asyncio.get_running_loop(), callback))
        if self._listen_thread is None:
            self._listen_thread = threading.Thread(
                target=self._listen, name="store-listen", daemon=True
            )
            self._listen_thread.start()

    def _listen(self) -> None:
        """LISTEN on its own connection; on any failure, reconnect after a pause. Workers also
        poll, so a wake-up lost while this reconnects only delays work, never loses it."""
        pause = 0.5
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))
                ) as conn:
                    conn.execute(
                        pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self._wakeup_channel))
                    )
                    pause = 0.5
                    while not self._stopping.is_set():
                        if any(True for _ in conn.notifies(timeout=0.5, stop_after=64)):
                            self._wake_all()
            except psycopg.Error as exc:
                log.warning("store.listen_failed", error=type(exc).__name__)
                self._stopping.wait(pause)
                pause = min(pause * 2, 10.0)

    def _wake_all(self) -> None:
        for loop, callback in self._listeners:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback)


def register_loaders(conn: psycopg.Connection[TupleRow]) -> None:
    """What every broker connection needs (the pool's and the operator commands' alike).

    No sequential scans: on a small table the planner prefers one, and under SERIALIZABLE a
    sequential scan locks the whole table's predicate, so any insert by another replica would
    abort the reader (PostgreSQL's manual advises steering toward index scans for this).
    """
    conn.adapters.register_loader("numeric", _NumericLoader)
    conn.adapters.register_dumper(bool, _FlagDumper)
    conn.execute("SET enable_seqscan = off")


def unavailable_error(exc: BaseException) -> StoreError | None:
    """A StoreError (503) naming why PostgreSQL cannot take the work, if ``exc`` says so."""
    reason = pg_unavailable_reason(exc)
    if reason is None:
        return None
    log.error("store.unavailable", error=type(exc).__name__, reason=reason)
    error = StoreError(reason, hint=PG_HINT)
    error.__cause__ = exc
    return error
