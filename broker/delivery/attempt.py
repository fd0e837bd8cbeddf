"""One attempt at one delivery: plan the call, make it, resolve a doubtful refusal, record it.

The worker (``worker.py``) decides when and how many; this decides nothing about *what* the
platform should hold (``mapping.plan_call`` does) and keeps the bookkeeping of every call: the
attempt rows, the delivery's next state and retry time, the log line and the metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

import structlog

from broker.clients.platform import PlatformClient, SlowCallCheck
from broker.config import Settings
from broker.core.mapping import PlatformAction, PlatformCall, PlatformState, plan_call
from broker.core.platform_answers import CallResult, means_already_gone
from broker.delivery.retry import RetryPolicy
from broker.errors import StoreError
from broker.metrics import Metrics
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Tx
from broker.store.outbox import (
    ClaimedDelivery,
    DeliveryState,
    NoCall,
    RecordedAction,
    complete,
    record_step,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# Recording an answer the store refused is tried again after 0.5 s, doubling up to 4 s: short
# enough that the worker's lease renewal and another replica's take-back grace
# (``delivery.outage_takeback_grace_seconds``) are never outrun once the store is back.
RECORD_RETRY_FIRST_SECONDS = 0.5
RECORD_RETRY_MAX_SECONDS = 4.0


class DeliveryAttempts:
    """Makes and records attempts for one worker (``owner``), on its clock."""

    def __init__(
        self,
        store: StoreBackend,
        client: PlatformClient,
        settings: Settings,
        metrics: Metrics,
        *,
        owner: str,
        clock: Callable[[], float],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._client = client
        self._settings = settings
        self._platform = settings.platform
        self._metrics = metrics
        self._owner = owner
        self._clock = clock
        self._policy = RetryPolicy(settings.delivery)

    async def run(
        self,
        delivery: ClaimedDelivery,
        call_done: Callable[[], None],
        may_run_slow: Callable[[], bool] | None = None,
    ) -> None:
        """Call the platform for ``delivery`` and record the outcome; ``call_done`` is called
        as soon as nothing more is sent, so the worker's slot is free while the outcome is
        written. ``may_run_slow`` is asked when a call passes ``delivery.slow_call_seconds``
        (False cuts it short)."""
        slow = None
        if may_run_slow is not None:
            slow = SlowCallCheck(self._settings.delivery.slow_call_seconds, may_run_slow)
        started_at = self._clock()
        call = self._plan(delivery)
        if call is None:
            call_done()
            await self._finish(
                delivery,
                started_at,
                DeliveryState.DONE,
                NoCall.NONE,
                [],
                note="platform already in this state; no call needed",
            )
            return
        while True:
            result, action, note, results = await self._send(delivery, call, slow)
            if result.outcome != "success" or call.reaches == delivery.target:
                break
            # An org move's Cancel landed: make that durable before the Add, so a crash in
            # between resumes with the Add (the old org's Cancel is never sent twice).
            self._record_metrics(action, result)
            kept = await self._record(
                delivery,
                partial(
                    record_step,
                    delivery=delivery,
                    owner=self._owner,
                    now=self._clock(),
                    started_at=started_at,
                    action=action,
                    results=results,
                    reached=call.reaches,
                ),
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
        self, delivery: ClaimedDelivery, call: PlatformCall, slow: SlowCallCheck | None
    ) -> tuple[CallResult, PlatformAction, str | None, list[CallResult]]:
        """One call, and after an interrupted attempt the fallback its refusal allows."""
        result = await self._client.send(call, slow=slow)
        results = [result]
        action = call.action
        note = None
        if result.outcome == "reject" and delivery.uncertain:
            result, action, note = await self._resolve_uncertain(call, result, results, slow)
        return result, action, note, results

    async def _resolve_uncertain(
        self,
        call: PlatformCall,
        rejected: CallResult,
        results: list[CallResult],
        slow: SlowCallCheck | None,
    ) -> tuple[CallResult, PlatformAction, str | None]:
        """An earlier attempt may have landed before a crash, so a refusal may mean 'done'.

        A refused Add is tried once as a Modify with the same body. A refused Cancel counts as
        done only when the answer says the subscription is already gone
        (``means_already_gone``); any other refusal stays a dead letter. Both are noted.
        """
        if call.action is PlatformAction.ADD:
            fallback = replace(call, action=PlatformAction.MODIFY)
            second = await self._client.send(fallback, slow=slow)
            results.append(second)
            if second.outcome == "success":
                return (
                    second,
                    PlatformAction.MODIFY,
                    "Add refused after an interrupted attempt; Modify applied",
                )
            return second, PlatformAction.MODIFY, None
        if call.action is PlatformAction.CANCEL:
            if means_already_gone(rejected.status, rejected.response_excerpt, self._platform):
                # The attempt is kept as the refusal it was; only the delivery counts as done.
                accepted = replace(rejected, outcome="success", error=None)
                note = (
                    f"Cancel repeated after an interrupted attempt; the platform answered "
                    f"{rejected.error or rejected.status}: already gone, taken as done"
                )
                return accepted, PlatformAction.CANCEL, note
            note = (
                f"Cancel repeated after an interrupted attempt was refused ({rejected.error}); "
                "the answer does not say the subscription is gone: check it on the platform, "
                "then retry or leave this dead letter"
            )
            return rejected, PlatformAction.CANCEL, note
        return rejected, call.action, None

    async def _finish(
        self,
        delivery: ClaimedDelivery,
        started_at: float,
        state: DeliveryState,
        action: RecordedAction,
        results: list[CallResult],
        *,
        next_attempt_at: float | None = None,
        acknowledged: PlatformState | None = None,
        note: str | None = None,
    ) -> None:
        kept = await self._record(
            delivery,
            partial(
                complete,
                delivery=delivery,
                owner=self._owner,
                now=self._clock(),
                started_at=started_at,
                state=state,
                action=action,
                results=results,
                next_attempt_at=next_attempt_at,
                acknowledged=acknowledged,
                note=note,
            ),
        )
        self._log_attempt(delivery, action, state, results, note=note, retry_at=next_attempt_at)
        if state is DeliveryState.DEAD:
            # The operator's to look at (``broker deliveries list --state dead``); errors are
            # already redacted by the platform client.
            last = results[-1] if results else None
            log.warning(
                "delivery.dead_letter",
                delivery_id=delivery.id,
                subscription_id=delivery.subscription_id,
                action=action,
                status=last.status if last else None,
                reason=note or (last.error if last else None) or "refused",
            )
        if not kept:
            log.warning("delivery.lease_lost", delivery_id=delivery.id)
        if state in (DeliveryState.DONE, DeliveryState.DEAD):
            self._metrics.deliveries_finished.labels(str(state)).inc()

    async def _record(self, delivery: ClaimedDelivery, job: Callable[[Tx], T]) -> T:
        """Write a platform answer's record, however long the store is away.

        The answer is known only to this process: giving up would leave the lease to run out and
        the call to be sent again. So it is kept here and written once the store is back (the
        worker renews the lease meanwhile); only a crash loses it. Logged on the first failure,
        then at each power of two, and once when written.
        """
        failures = 0
        delay = RECORD_RETRY_FIRST_SECONDS
        try:
            while True:
                try:
                    # The platform has answered: record it before queued ingest, so a crash
                    # finds as few answered calls unrecorded (and sent again) as possible.
                    written = await self._store.write(job, urgent=True)
                except StoreError as exc:
                    failures += 1
                    self._metrics.record_retries.inc()
                    if failures == 1:
                        self._metrics.unrecorded_answers.inc()
                    if failures & (failures - 1) == 0:
                        log.warning(
                            "delivery.record_failed",
                            delivery_id=delivery.id,
                            subscription_id=delivery.subscription_id,
                            failures=failures,
                            retry_in=delay,
                            error=exc.message,
                        )
                    await self._sleep(delay)
                    delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)
                    continue
                if failures:
                    log.info(
                        "delivery.record_written",
                        delivery_id=delivery.id,
                        subscription_id=delivery.subscription_id,
                        failures=failures,
                    )
                return written
        finally:
            if failures:
                self._metrics.unrecorded_answers.dec()

    def _log_attempt(
        self,
        delivery: ClaimedDelivery,
        action: RecordedAction,
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

    def _record_metrics(self, action: PlatformAction, result: CallResult) -> None:
        self._metrics.platform_calls.labels(action, result.outcome).inc()
        self._metrics.platform_latency.observe(result.latency_ms / 1000)
