"""The delivery worker: takes due deliveries from the outbox and makes the platform calls.

It owns concurrency (a bounded number of calls on the wire, one per subscription), the retry
schedule (``RetryPolicy``) and the bookkeeping of every attempt. It never decides *what* the
platform should hold; ``mapping.plan_call`` does, from the target and what was acknowledged.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial

import structlog

from broker.clients.platform import PlatformClient
from broker.config import Settings
from broker.core.mapping import PlatformAction, PlatformCall, PlatformState, plan_call
from broker.core.platform_answers import CallResult, means_already_gone
from broker.delivery.retry import RetryPolicy
from broker.errors import StoreError
from broker.metrics import Metrics
from broker.store.database import Store
from broker.store.outbox import (
    ClaimedDelivery,
    DeliveryState,
    claim_due,
    complete,
    record_step,
    release_leases,
)

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
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
        self._client = client
        self._settings = settings
        self._platform = settings.platform
        self._delivery = settings.delivery
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._policy = RetryPolicy(settings.delivery)
        self.owner = f"worker-{secrets.token_hex(6)}"
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Deliveries whose platform call is still going: the concurrency limit counts these
        # only, so a finished call's slot is free while its outcome is being written.
        self._calling = 0
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
            if free > 0:
                try:
                    claimed, next_due = await self._store.write(
                        partial(
                            claim_due,
                            owner=self.owner,
                            now=self._clock(),
                            lease_seconds=self._delivery.lease_seconds,
                            limit=free,
                        )
                    )
                except StoreError:
                    # The database may come back (disk full, locked); readiness reports it.
                    log.exception("delivery.claim_failed")
                    await self._nap(None)
                    continue
                for delivery in claimed:
                    self._calling += 1
                    task = asyncio.create_task(self._deliver(delivery))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                if len(claimed) == free:
                    continue  # there may be more; a finishing task frees a slot and wakes us
            await self._nap(next_due)

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
                released = await self._store.write(
                    partial(release_leases, owner=self.owner, now=self._clock())
                )
                log.warning("delivery.stopped_mid_call", calls=len(pending), released=released)

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        released = False

        def call_done() -> None:
            nonlocal released
            if not released:
                released = True
                self._calling -= 1
                self._wakeup.set()

        try:
            await self._attempt(delivery, call_done)
        except Exception:
            # The lease brings the delivery back; say so loudly.
            log.exception(
                "delivery.attempt_crashed",
                delivery_id=delivery.id,
                subscription_id=delivery.subscription_id,
            )
        finally:
            call_done()

    async def _attempt(self, delivery: ClaimedDelivery, call_done: Callable[[], None]) -> None:
        started_at = self._clock()
        call = self._plan(delivery)
        if call is None:
            call_done()
            await self._finish(
                delivery,
                started_at,
                DeliveryState.DONE,
                "none",
                [],
                note="platform already in this state; no call needed",
            )
            return
        while True:
            result, action, note, results = await self._send(delivery, call)
            if result.outcome != "success" or call.reaches == delivery.target:
                break
            # An org move's Cancel landed: make that durable before the Add, so a crash in
            # between resumes with the Add (the old org's Cancel is never sent twice).
            self._record_metrics(action, result)
            kept = await self._store.write(
                partial(
                    record_step,
                    delivery=delivery,
                    owner=self.owner,
                    now=self._clock(),
                    started_at=started_at,
                    action=action,
                    results=results,
                    reached=call.reaches,
                ),
                urgent=True,
            )
            self._log_attempt(delivery, action, "step", results, note=note)
            if not kept:
                log.warning("delivery.lease_lost", delivery_id=delivery.id)
                return
            delivery = replace(delivery, acknowledged=call.reaches, uncertain=False)
            started_at = self._clock()
            next_call = self._plan(delivery)
            assert next_call is not None, "a step short of the target always has a next call"
            call = next_call
        call_done()  # the platform is done with us; recording the outcome needs no slot
        self._record_metrics(action, result)
        if result.outcome == "success":
            await self._finish(
                delivery,
                started_at,
                DeliveryState.DONE,
                action,
                results,
                acknowledged=delivery.target,
                note=note,
            )
        elif result.outcome == "retry":
            retry_at = self._clock() + self._policy.delay(delivery.attempt, result.retry_after)
            if self._policy.gives_up(delivery.first_attempt_at, retry_at):
                await self._finish(
                    delivery,
                    started_at,
                    DeliveryState.DEAD,
                    action,
                    results,
                    note=f"gave up after the retry horizon: {result.error}",
                )
            else:
                await self._finish(
                    delivery,
                    started_at,
                    DeliveryState.PENDING,
                    action,
                    results,
                    next_attempt_at=retry_at,
                )
        else:
            await self._finish(delivery, started_at, DeliveryState.DEAD, action, results, note=note)

    def _plan(self, delivery: ClaimedDelivery) -> PlatformCall | None:
        return plan_call(
            delivery.acknowledged,
            delivery.target,
            delivery.subscription_id,
            custom_pricing_format=self._settings.platform.custom_pricing_format,
        )

    async def _send(
        self, delivery: ClaimedDelivery, call: PlatformCall
    ) -> tuple[CallResult, str, str | None, list[CallResult]]:
        """One call, and after an interrupted attempt the fallback its refusal allows."""
        result = await self._client.send(call)
        results = [result]
        action: str = call.action
        note = None
        if result.outcome == "reject" and delivery.uncertain:
            result, action, note = await self._resolve_uncertain(call, result, results)
        return result, action, note, results

    async def _resolve_uncertain(
        self, call: PlatformCall, rejected: CallResult, results: list[CallResult]
    ) -> tuple[CallResult, str, str | None]:
        """An earlier attempt may have landed before a crash, so a refusal may mean 'done'.

        A refused Add is tried once as a Modify with the same body. A refused Cancel counts as
        done only when the answer says the subscription is already gone
        (``means_already_gone``); any other refusal stays a dead letter. Both are noted.
        """
        if call.action == "add":
            fallback = replace(call, action=PlatformAction.MODIFY)
            second = await self._client.send(fallback)
            results.append(second)
            if second.outcome == "success":
                return second, "modify", "Add refused after an interrupted attempt; Modify applied"
            return second, "modify", None
        if call.action == "cancel":
            if means_already_gone(rejected.status, rejected.response_excerpt, self._platform):
                # The attempt is kept as the refusal it was; only the delivery counts as done.
                accepted = replace(rejected, outcome="success", error=None)
                note = (
                    f"Cancel repeated after an interrupted attempt; the platform answered "
                    f"{rejected.error or rejected.status}: already gone, taken as done"
                )
                return accepted, "cancel", note
            note = (
                f"Cancel repeated after an interrupted attempt was refused ({rejected.error}); "
                "the answer does not say the subscription is gone: check it on the platform, "
                "then retry or leave this dead letter"
            )
            return rejected, "cancel", note
        return rejected, call.action, None

    async def _finish(
        self,
        delivery: ClaimedDelivery,
        started_at: float,
        state: DeliveryState,
        action: str,
        results: list[CallResult],
        *,
        next_attempt_at: float | None = None,
        acknowledged: PlatformState | None = None,
        note: str | None = None,
    ) -> None:
        kept = await self._store.write(
            partial(
                complete,
                delivery=delivery,
                owner=self.owner,
                now=self._clock(),
                started_at=started_at,
                state=state,
                action=action,
                results=results,
                next_attempt_at=next_attempt_at,
                acknowledged=acknowledged,
                note=note,
            ),
            # The platform has answered: record it before queued ingest, so a crash now finds
            # as few answered calls unrecorded (and sent again on restart) as possible.
            urgent=True,
        )
        self._log_attempt(delivery, action, state, results, note=note, retry_at=next_attempt_at)
        if not kept:
            log.warning("delivery.lease_lost", delivery_id=delivery.id)
        if state in (DeliveryState.DONE, DeliveryState.DEAD):
            self._metrics.deliveries_finished.labels(str(state)).inc()

    def _log_attempt(
        self,
        delivery: ClaimedDelivery,
        action: str,
        state: str,
        results: list[CallResult],
        *,
        note: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        last = results[-1] if results else None
        log.info(
            "delivery.attempt",
            delivery_id=delivery.id,
            subscription_id=delivery.subscription_id,
            attempt=delivery.attempt,
            action=action,
            state=state,
            status=last.status if last else None,
            latency_ms=last.latency_ms if last else 0.0,
            url=last.url if last else None,
            error=(note or (last.error if last else None)),
            retry_in=round(retry_at - self._clock(), 3) if retry_at else None,
        )

    def _record_metrics(self, action: str, result: CallResult) -> None:
        self._metrics.platform_calls.labels(action, result.outcome).inc()
        self._metrics.platform_latency.observe(result.latency_ms / 1000)
