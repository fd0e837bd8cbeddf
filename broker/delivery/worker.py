"""The delivery worker: takes due deliveries from the outbox and makes the platform calls.

It owns concurrency (a bounded number of calls on the wire, one per subscription; calls that run
past ``delivery.slow_call_seconds`` move to a bounded slow share so hung orgs cannot take every
slot), its leases (renewed while a delivery is held in memory, so only a dead process loses
one), when to look for due work, and shutdown. Each attempt (the call, its fallback, the retry
schedule and the bookkeeping) is ``attempt.DeliveryAttempts``'. It never decides *what* the
platform should hold;
``mapping.plan_call`` does, from the target and what was acknowledged.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial

import structlog

from broker.clients.platform import PlatformClient
from broker.config import Settings
from broker.delivery.attempt import DeliveryAttempts
from broker.errors import StoreError
from broker.metrics import Metrics
from broker.store.engine.backend import StoreBackend
from broker.store.outbox import (
    ClaimedDelivery,
    claim_due,
    release_leases,
)

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class DeliveryWorker:
    def __init__(
        self,
        store: StoreBackend,
        client: PlatformClient,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` are the worker's sense of time: when a delivery is due, and
        how an idle worker naps until then. Tests pass a clock they move by hand."""
        self._store = store
        self._delivery = settings.delivery
        self._clock = clock
        self._sleep = sleep
        self.owner = f"worker-{secrets.token_hex(6)}"
        self._attempts = DeliveryAttempts(
            store, client, settings, metrics, owner=self.owner, clock=clock, sleep=sleep
        )
        # Deliveries this worker holds in memory (a call on the wire, or an answer still to be
        # recorded): their leases are renewed at each pass, so none is taken back while held.
        self._held: set[int] = set()
        # When the store came back after this worker saw it fail (None: no outage seen). Other
        # workers' expired leases are left alone for ``outage_takeback_grace_seconds`` after it,
        # so their holders can renew or record first (their leases ran out while nobody could
        # write, not because they died).
        self._store_back_at: float | None = None
        self._outage = False
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Deliveries whose platform call is still going: the concurrency limit counts these
        # only, so a finished call's slot is free while its outcome is being written. Calls past
        # ``slow_call_seconds`` move from ``_calling`` to ``_slow`` (at most ``slow_calls``).
        self._calling = 0
        self._slow = 0
        self._metrics = metrics
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.heartbeat: float = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="delivery-worker")

    @property
    def alive(self) -> bool:
        """Running, and its loop went round recently (a stuck loop is not alive)."""
        fresh = time.monotonic() - self.heartbeat < self._delivery.poll_interval_seconds * 3 + 5
        return self._task is not None and not self._task.done() and fresh

    def begin_stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    def wake(self) -> None:
        """New work was committed: look for it now instead of at the next poll."""
        self._wakeup.set()

    @property
    def busy(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        log.info(
            "delivery.worker_started", owner=self.owner, concurrency=self._delivery.concurrency
        )
        while not self._stopping:
            self.heartbeat = time.monotonic()
            self._wakeup.clear()
            free = min(
                self._delivery.concurrency - self._calling,
                self._delivery.concurrency * 4 - len(self._in_flight),  # writes backing up
            )
            next_due: float | None = None
            if free > 0 or self._held:
                now = self._clock()
                try:
                    claimed, next_due = await self._store.write(
                        partial(
                            claim_due,
                            owner=self.owner,
                            now=now,
                            lease_seconds=self._delivery.lease_seconds,
                            limit=max(free, 0),
                            held=frozenset(self._held),
                            take_back=self._may_take_back(now),
                        )
                    )
                except StoreError:
                    # The database may come back (disk full, locked); readiness reports it.
                    log.exception("delivery.claim_failed")
                    self._outage = True
                    await self._nap(None)
                    continue
                if self._outage:
                    self._outage = False
                    self._store_back_at = now
                    log.info("delivery.store_back", held=len(self._held))
                for delivery in claimed:
                    self._calling += 1
                    self._held.add(delivery.id)
                    task = asyncio.create_task(self._deliver(delivery))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                if free > 0 and len(claimed) == free:
                    continue  # there may be more; a finishing task frees a slot and wakes us
            await self._nap(next_due)

    def _may_take_back(self, now: float) -> bool:
        """Not during an outage, nor for a grace period after the store came back."""
        if self._outage:
            return False
        back = self._store_back_at
        return back is None or now - back >= self._delivery.outage_takeback_grace_seconds

    async def _nap(self, next_due: float | None) -> None:
        """Until woken (new work, a finished call) or the next delivery falls due, at most
        one poll interval: a lease that ran out wakes nobody, so the worker looks again."""
        timeout = self._delivery.poll_interval_seconds
        if next_due is not None:
            timeout = min(timeout, max(0.0, next_due - self._clock()))
        woken = asyncio.ensure_future(self._wakeup.wait())
        timer = asyncio.ensure_future(self._sleep(timeout))
        try:
            await asyncio.wait((woken, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            timer.cancel()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wakeup.set()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming; let calls on the wire finish; leases cover anything cut short."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=grace_seconds)
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                try:
                    released = await self._store.write(
                        partial(release_leases, owner=self.owner, now=self._clock())
                    )
                except StoreError as exc:
                    # The store is away: the leases run out instead, and the calls whose
                    # answers were never recorded are sent again (a restart during an outage).
                    log.warning(
                        "delivery.stopped_mid_call",
                        calls=len(pending),
                        released=0,
                        error=exc.message,
                    )
                    return
                log.warning("delivery.stopped_mid_call", calls=len(pending), released=released)

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        released = False
        slow = False

        def call_done() -> None:
            nonlocal released
            if not released:
                released = True
                if slow:
                    self._slow -= 1
                else:
                    self._calling -= 1
                self._wakeup.set()

        def may_run_slow() -> bool:
            """The call has run past ``slow_call_seconds``: free its slot for fresh calls if
            the slow share has room, else cut it short."""
            nonlocal slow
            if slow or released:
                return True
            if self._slow >= self._delivery.slow_calls:
                self._metrics.slow_calls.labels("cut").inc()
                log.warning(
                    "delivery.slow_call_cut",
                    delivery_id=delivery.id,
                    subscription_id=delivery.subscription_id,
                    slow_calls=self._slow,
                )
                return False
            slow = True
            self._calling -= 1
            self._slow += 1
            self._metrics.slow_calls.labels("moved").inc()
            log.info(
                "delivery.slow_call",
                delivery_id=delivery.id,
                subscription_id=delivery.subscription_id,
                slow_calls=self._slow,
            )
            self._wakeup.set()
            return True

        try:
            await self._attempts.run(delivery, call_done, may_run_slow)
        except Exception:
            # The lease brings the delivery back; say so loudly.
            log.exception(
                "delivery.attempt_crashed",
                delivery_id=delivery.id,
                subscription_id=delivery.subscription_id,
            )
        finally:
            call_done()
            self._held.discard(delivery.id)
