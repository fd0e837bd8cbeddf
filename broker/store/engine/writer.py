"""How a write job runs, the same on SQLite and on PostgreSQL: the job, its two lanes, the group
loop and the writer thread.

A write job is a function ``fn(tx)``. One writer thread per store takes the jobs queued while the
previous group committed and runs them in one transaction (group commit: one COMMIT serves them
all). On both backends:

- the transaction starts holding the one write lock (``WriteSession.begin``), so writers of every
  process, the operator's commands included, run one after another;
- a job that raises rolls back alone: the transaction is rolled back and the rest of the group
  runs again without it (no savepoints: on PostgreSQL each would be two more round trips);
- a group that lost a race (``WriteSession.lost_race``) runs again from the start, up to
  ``MAX_TRIES`` times with a jittered, growing pause, before anyone is told it was written;
- an error that says the database cannot take writes now (``WriteSession.unavailable``) fails
  every job of the group with that ``StoreError`` (503);
- a caller hears "written" only after COMMIT returned.

Urgent jobs (a platform call's answer, which already happened outside) wait in a lane of their
own and are taken before queued ordinary jobs (webhook ingest), in a group of their own, so a
crash finds few answered calls unrecorded.

The operator's commands run their one job through ``run_job``: the same loop, a group of one.
The backends only say how to open, commit and roll back a group on their connection and what
an error means; nothing here knows which database it is.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import structlog

from broker.errors import StoreError
from broker.store.engine.tx import Tx

T = TypeVar("T")
Sleep = Callable[[float], None]

log = structlog.get_logger(__name__)

# A group that keeps losing races is given up after this many runs; its callers get a 503.
MAX_TRIES = 30
# The longest pause between two runs of a group that lost a race, in seconds.
MAX_BACKOFF = 0.1


@dataclass
class StoreStats:
    transactions: int = 0
    jobs: int = 0
    largest_group: int = 0
    urgent_transactions: int = 0  # of ``transactions``, those of the urgent lane
    retries: int = 0  # runs of a group again after it lost a race
    failures: list[str] = field(default_factory=list)


class QueuedJob(Protocol):
    """A write job as the lanes and the group loop hold it, whatever its result's type."""

    error: BaseException | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    def run(self, tx: Tx) -> None:
        """Run the job's function in ``tx`` and keep what it gave back (its error is not kept:
        the group loop judges it)."""

    def fail(self, error: BaseException) -> None:
        """End the job with ``error`` instead of a result."""

    def settle(self) -> None:
        """Hand the result or the error to the waiting caller, if it still waits."""


@dataclass
class WriteJob(Generic[T]):
    """One ``fn(tx)``, what it gave back, and (for the store's callers) the future that waits."""

    fn: Callable[[Tx], T]
    future: asyncio.Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    # The result in a 1-tuple once the job ran, so a job whose result is None is told apart.
    result: tuple[T] | None = None
    error: BaseException | None = None

    def run(self, tx: Tx) -> None:
        self.result, self.error = (self.fn(tx),), None

    def fail(self, error: BaseException) -> None:
        self.result, self.error = None, error

    def outcome(self) -> T:
        """The result, or the job's error raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None, "a job without an error has run"
        return self.result[0]

    def settle(self) -> None:
        if self.future is None or self.future.done():  # the caller went away; the write stands
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        elif self.result is not None:
            self.future.set_result(self.result[0])


class WriteSession(Protocol):
    """What a backend tells the group loop: one connection's writing transactions."""

    def begin(self) -> Tx:
        """Open a transaction holding the write lock; the handle every job of the group gets."""

    def commit(self, tx: Tx) -> None: ...

    def rollback(self) -> None:
        """Roll back whatever is open (nothing if no transaction is); never raises."""

    def lost_race(self, exc: BaseException) -> bool:
        """Whether ``exc`` means another transaction won a race: run the group again."""

    def unavailable(self, exc: BaseException) -> StoreError | None:
        """A 503 naming why the database cannot take writes now, if ``exc`` says so."""

    def error_name(self, exc: BaseException) -> str:
        """What to log of ``exc``: its driver's name for it (never its message)."""

    def close(self) -> None: ...


def backoff(tries: int) -> float:
    """A jittered pause that grows with the tries, so racers do not collide again in step."""
    return random.uniform(0, min(MAX_BACKOFF, 0.002 * 2**tries))  # noqa: S311 - spreads, guards nothing


def commit_group(
    session: WriteSession, group: list[QueuedJob], stats: StoreStats, *, sleep: Sleep = time.sleep
) -> None:
    """Run ``group`` as one transaction with the promises in this module's docstring; each job
    ends with its ``result`` or its ``error``."""
    running = list(group)
    tries = 0
    while running:
        failed, error = _run_once(session, running)
        if error is None:
            break
        tries += 1
        if session.lost_race(error) and tries < MAX_TRIES:
            stats.retries += 1
            sleep(backoff(tries))
            continue
        unavailable = session.unavailable(error)
        if failed is not None and unavailable is None and not session.lost_race(error):
            failed.fail(error)  # the job's own failure: the others run again without it
            running.remove(failed)
            continue
        log.error(
            "store.commit_failed",
            error=session.error_name(error),
            reason=None if unavailable is None else unavailable.message,
            jobs=len(running),
            tries=tries,
        )
        if unavailable is None:
            unavailable = StoreError("the database could not commit the change")
            unavailable.__cause__ = error
        for job in running:
            job.fail(unavailable)
        break
    stats.transactions += 1
    stats.jobs += len(group)
    stats.largest_group = max(stats.largest_group, len(group))


def _run_once(
    session: WriteSession, running: list[QueuedJob]
) -> tuple[QueuedJob | None, Exception | None]:
    """One try of the group: (None, None) once committed; else the job that raised, if one
    did, and the error, with the transaction rolled back."""
    failed: QueuedJob | None = None
    try:
        tx = session.begin()
        for job in running:
            failed = job
            job.run(tx)
        failed = None
        session.commit(tx)
    except Exception as exc:  # noqa: BLE001 - judged by the caller, handed to the job's waiter
        session.rollback()
        return failed, exc
    except BaseException:
        session.rollback()
        raise
    return None, None


def run_job(session: WriteSession, fn: Callable[[Tx], T], *, sleep: Sleep = time.sleep) -> T:
    """Run ``fn`` now, on the calling thread, as a group of one: what the operator's commands
    use. Raises the job's own error, or a ``StoreError`` when the database did not take it."""
    job = WriteJob(fn)
    commit_group(session, [job], StoreStats(), sleep=sleep)
    return job.outcome()


class WriteLanes:
    """The writer's queue: urgent jobs are always handed out before ordinary ones.

    A lock and two deques rather than two ``queue.SimpleQueue``s, because the writer must block
    until *either* lane has work.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._urgent: deque[QueuedJob] = deque()
        self._ordinary: deque[QueuedJob] = deque()
        self._closing = False

    def put(self, job: QueuedJob, *, urgent: bool) -> None:
        with self._ready:
            (self._urgent if urgent else self._ordinary).append(job)
            self._ready.notify()

    def close(self) -> None:
        """Let the writer finish what is queued, then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify()

    def next_group(self, limit: int) -> tuple[list[QueuedJob], bool] | None:
        """Up to ``limit`` jobs of one lane (urgent first) and whether they are urgent; None
        once closed and empty."""
        with self._ready:
            while not self._urgent and not self._ordinary:
                if self._closing:
                    return None
                self._ready.wait()
            urgent = bool(self._urgent)
            lane = self._urgent if urgent else self._ordinary
            return [lane.popleft() for _ in range(min(limit, len(lane)))], urgent


class GroupWriter:
    """One thread that opens a ``WriteSession`` (``open_session``, on that thread: a SQLite
    connection belongs to the thread that made it) and commits the lanes' groups on it."""

    def __init__(
        self,
        open_session: Callable[[], WriteSession],
        *,
        group_max: int,
        name: str,
        sleep: Sleep = time.sleep,
    ):
        self._open_session = open_session
        self._group_max = group_max
        self._name = name
        self._sleep = sleep
        self._lanes = WriteLanes()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.stats = StoreStats()

    def start(self) -> BaseException | None:
        """Start the thread and wait (blocking) until its session is open; the error if not."""
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            self._thread = None
        return self._open_error

    @property
    def running(self) -> bool:
        return self._thread is not None

    def stop(self) -> None:
        """Finish what is queued, then close (blocking: call off the event loop)."""
        self._lanes.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    async def write(self, fn: Callable[[Tx], T], *, urgent: bool) -> T:
        if self._thread is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._lanes.put(WriteJob(fn, future, loop), urgent=urgent)
        return await future

    def _main(self) -> None:
        try:
            session = self._open_session()
        except Exception as exc:  # noqa: BLE001 - handed to ``start``'s caller
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while (taken := self._lanes.next_group(self._group_max)) is not None:
                group, urgent = taken
                commit_group(session, group, self.stats, sleep=self._sleep)
                self.stats.urgent_transactions += urgent
                settle_group(group)
        finally:
            session.close()


def settle_group(group: list[QueuedJob]) -> None:
    """Hand each job's result or error to its caller: one wake-up of each event loop per
    group, not per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[QueuedJob]] = {}
    for job in group:
        if job.loop is not None:
            by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_settle, jobs)


def _settle(jobs: list[QueuedJob]) -> None:
    for job in jobs:
        job.settle()
