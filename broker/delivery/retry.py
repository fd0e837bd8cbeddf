"""When to try a failed platform call again, and when to stop.

Deliveries outlive the process (a retry may be due days later, after restarts), so the schedule is
kept in the database rather than in a sleeping coroutine. tenacity still owns the arithmetic: its
``wait_exponential_jitter`` strategy gives the delay for attempt *n*; a ``Retry-After`` from the
platform lengthens it, never shortens it.
"""

from __future__ import annotations

from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from broker.config import DeliverySettings


class RetryPolicy:
    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._wait = wait_exponential_jitter(
            multiplier=settings.initial_backoff_seconds,
            max=settings.max_backoff_seconds,
            jitter=settings.jitter_seconds,
        )
        self._retrying = Retrying(wait=self._wait)

    def delay(self, attempt_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt_number`` (1-based)."""
        state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        state.attempt_number = max(1, attempt_number)
        delay = float(self._wait(state))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._settings.max_retry_after_seconds))
        return delay

    def gives_up(self, first_attempt_at: float, retry_at: float) -> bool:
        """True once the next try would fall beyond the retry horizon."""
        return retry_at - first_attempt_at > self._settings.retry_horizon_seconds
