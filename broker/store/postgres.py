"""PostgreSQL access for replicas: a pool of connections, each job a SERIALIZABLE transaction.

SQLite gives the store one writer at a time, so every job sees the database as if it ran alone.
Replicas on PostgreSQL run jobs side by side; SERIALIZABLE keeps that promise (PostgreSQL aborts
one of two jobs that could not have run one after the other, with SQLSTATE 40001) and the store
runs an aborted job again from the start. So every store function stays correct on both
backends without a lock of its own: two replicas taking the same ``event_id``, or queueing
changes of one subscription at once, end as if one went first.

psycopg 3 (sync) runs the same job functions sqlite3 runs, on threads, so the SQL is written
once; its pool checks a connection before lending it, so a database that comes back is used
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import structlog
from psycopg import sql as pgsql
from psycopg.adapt import Loader

from broker.errors import StoreError
from broker.store.database import StoreStats
from broker.store.outbox import DELIVERIES_CHANNEL
from broker.store.pg_schema import apply_pg_migrations
from broker.store.pg_sql import to_postgres_ddl, to_psycopg
from broker.store.tx import Cursor, Dialect, Params, Tx

T = TypeVar("T")

log = structlog.get_logger(__name__)

# SQLSTATEs after which the whole job is run again: it lost a race with another transaction.
RETRY_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
MAX_TRIES = 50
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

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


def pg_unavailable_reason(exc: BaseException) -> str | None:
    """Why PostgreSQL cannot take the work now, if ``exc`` says so (None: some other error)."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "the database is unreachable"
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if state in _UNAVAILABLE_STATES:
            return _UNAVAILABLE_STATES[state]
        if isinstance(exc, psycopg.OperationalError) or state.startswith("08"):
            return "the database is unreachable"
    return None


class PgTx(Tx):
    dialect = Dialect.POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        if isinstance(params, dict):
            bound: Any = {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
        else:
            bound = [int(v) if isinstance(v, bool) else v for v in params]
        query = to_psycopg(to_postgres_ddl(sql))
        return self.conn.execute(query, bound)


class PgStore:
    """The broker's PostgreSQL database, reached only through ``write`` and ``read``."""

    dialect = Dialect.POSTGRESQL
    local_directory = None  # the server's disk is its own; /readyz's write proves it

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 5.0):
        self._url = url
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
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="store-pg")
        self._listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._listen_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.stats = StoreStats()
        self.retries = 0

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
            applied = apply_pg_migrations(conn, PgTx(conn))
        if applied:
            log.info("store.migrated", applied=applied)

    async def close(self) -> None:
        self._stopping.set()
        loop = asyncio.get_running_loop()
        if self._listen_thread is not None:
            await loop.run_in_executor(None, self._listen_thread.join)
            self._listen_thread = None
        await loop.run_in_executor(None, self._pool.close)
        self._threads.shutdown(wait=True)

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool = False) -> T:
        """Run ``fn`` in a SERIALIZABLE transaction; again if it lost a race; return once
        committed. ``urgent`` needs nothing here: writers do not queue behind each other."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, fn, "SERIALIZABLE")

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` on one consistent snapshot of committed data."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, fn, "REPEATABLE READ READ ONLY")

    def _run(self, fn: Callable[[Tx], T], isolation: str) -> T:
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with self._pool.connection() as conn:
                    return self._once(conn, fn, isolation)
            except psycopg.Error as exc:
                if exc.sqlstate in RETRY_STATES and attempt < MAX_TRIES:
                    self.retries += 1
                    # Jittered, growing pause so the racers do not collide again in step.
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
                    continue
                reason = pg_unavailable_reason(exc)
                if reason is None:
                    raise
                raise _unavailable(exc, reason) from exc
            except psycopg_pool.PoolTimeout as exc:
                raise _unavailable(exc, "the database is unreachable") from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _once(self, conn: psycopg.Connection[Any], fn: Callable[[Tx], T], isolation: str) -> T:
        conn.execute(pgsql.SQL("BEGIN ISOLATION LEVEL {}").format(pgsql.SQL(isolation)))
        try:
            result = fn(PgTx(conn))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
            raise
        self.stats.transactions += 1
        self.stats.jobs += 1
        return result

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
                        pgsql.SQL("LISTEN {}").format(pgsql.Identifier(DELIVERIES_CHANNEL))
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


def register_loaders(conn: psycopg.Connection[Any]) -> None:
    """What every broker connection needs (the pool's and the operator commands' alike)."""
    conn.adapters.register_loader("numeric", _NumericLoader)


def _unavailable(exc: BaseException, reason: str) -> StoreError:
    log.error("store.unavailable", error=type(exc).__name__, reason=reason)
    return StoreError(reason, hint=PG_HINT)
