"""PostgreSQL's writer: one connection per process, jobs folded into SERIALIZABLE transactions,
and one writing transaction at a time across all replicas.

Measured, in order:
- every job in its own SERIALIZABLE transaction on a pool of ten connections: jobs of different
  subscriptions share index pages, so PostgreSQL's serializable checks aborted most of them as
  possible anomalies (1,431 re-runs for 600 webhooks, 199 jobs/s);
- one writer per process, as the SQLite store has (one thread and connection, queued jobs
  folded into one transaction, each in a savepoint so a failing job rolls back alone, urgent
  jobs first): 0 re-runs and twice the rate with one replica, but two replicas' groups still
  aborted each other, often past any retry limit (2 replicas slower than 1, and 503s);
- so each group first takes ``LOCK TABLE broker_write_lock``: a statement that takes no
  snapshot, so the group's snapshot starts after the previous holder committed, and groups of
  all replicas (and the operator's commands, ``pg_admin.transaction``) run one after another.
  Nothing races, nothing is re-run, and SERIALIZABLE stays as the guarantee regardless.
Replicas still share the web work, the billing reads and the platform calls; the database
writes are one stream, as they are on SQLite. A group that does lose a race (SQLSTATE
40001/40P01) is run again from the start, every job in it, before anyone is told it was written.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import structlog

from broker.errors import StoreError
from broker.store.engine.lanes import WriteJob, WriteLanes
from broker.store.engine.sqlite import StoreStats, settle_group
from broker.store.engine.tx import Tx
from broker.store.pg_schema import begin_write

log = structlog.get_logger(__name__)

# SQLSTATEs after which the whole group is run again: it lost a race with another transaction.
RETRY_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
MAX_TRIES = 30


class _LostRace(Exception):
    """A job's statement lost a race: the transaction is doomed, the group must run again."""


class _JobFailed(Exception):
    """One job raised: roll back, hand it its error, run the rest of the group again."""

    def __init__(self, job: WriteJob, error: BaseException):
        super().__init__(type(error).__name__)
        self.job = job
        self.error = error


class PgWriter:
    """Runs write jobs on one thread and one connection (opened, and reopened, by ``connect``)."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        wrap: Callable[[psycopg.Connection[Any]], Tx],
        unavailable: Callable[[BaseException], StoreError | None],
        *,
        group_max: int,
    ):
        self._connect = connect
        self._wrap = wrap
        self._unavailable = unavailable
        self._group_max = group_max
        self.lanes = WriteLanes()
        self.stats = StoreStats()
        self.retries = 0
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="store-pg-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then close (blocking: call off the event loop)."""
        self.lanes.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _main(self) -> None:
        try:
            while (taken := self.lanes.next_group(self._group_max)) is not None:
                group, urgent = taken
                self._commit_group(group)
                self.stats.urgent_transactions += urgent
                settle_group(group)
        finally:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _commit_group(self, group: list[WriteJob]) -> None:
        """Run the group in one transaction. No savepoints (two round trips per job): a job
        that fails has the transaction rolled back, keeps its error, and the others run again
        without it, so a failing job still rolls back alone."""
        running = list(group)
        races = 0
        while running:
            try:
                self._run_group(self._connection(), running)
                break
            except _JobFailed as failed:
                self._roll_back()
                failed.job.error = failed.error
                running.remove(failed.job)
            except (psycopg.Error, _LostRace) as exc:
                cause = exc.__cause__ if isinstance(exc, _LostRace) else exc
                self._roll_back()
                races += 1
                if _lost_race(cause) and races < MAX_TRIES:
                    self.retries += 1
                    # Jittered, growing pause so the racers do not collide again in step.
                    time.sleep(random.uniform(0, min(0.1, 0.002 * 2**races)))  # noqa: S311
                    continue
                error = self._unavailable(cause) if cause is not None else None
                if error is None:
                    error = StoreError("the database could not commit the change")
                    error.__cause__ = cause
                log.error("store.commit_failed", error=type(cause).__name__, jobs=len(running))
                for job in running:
                    job.error = error
                break
        self.stats.transactions += 1
        self.stats.jobs += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))

    def _run_group(self, conn: psycopg.Connection[Any], group: list[WriteJob]) -> None:
        begin_write(conn)
        tx = self._wrap(conn)
        for job in group:
            job.result, job.error = None, None
            try:
                job.result = job.fn(tx)
            except psycopg.Error as exc:
                if _lost_race(exc) or conn.broken:
                    raise _LostRace from exc
                raise _JobFailed(job, self._unavailable(exc) or exc) from exc
            except Exception as exc:
                raise _JobFailed(job, exc) from exc
        tx.flush_notifications()
        conn.execute("COMMIT")

    def _roll_back(self) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")


def _lost_race(exc: BaseException | None) -> bool:
    return isinstance(exc, psycopg.Error) and exc.sqlstate in RETRY_STATES
