"""When to try a failed platform call again, and when to stop.

Deliveries outlive the process (a retry may be due days later, after restarts), so the schedule's
state, the attempt number and the first attempt's time, lives in the database, not in a sleeping
coroutine. That leaves no ``tenacity.RetryCallState`` to hand its wait strategies, so the schedule
is computed here by ``retry_delay``, a pure function of that stored state: the same arithmetic as
tenacity's ``wait_exponential_jitter`` (initial x 2^(attempt-1), plus jitter, capped), without
building a fake retry state and leaning on which of its fields a strategy happens to read. A
``Retry-After`` from the platform lengthens the wait, never shortens it.
"""

from __future__ import annotations

import math
import random

from broker.config import DeliverySettings


def retry_delay(
    settings: DeliverySettings,
    attempt: int,
    *,
    jitter: float = 0.0,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based; below 1 counts as 1).

    ``jitter`` is the random part, already drawn from [0, ``settings.jitter_seconds``], so the
    schedule itself is deterministic and testable with literal values.
    """
    try:
        backoff = math.ldexp(settings.initial_backoff_seconds, max(attempt, 1) - 1) + jitter
    except OverflowError:  # attempt in the thousands: long past the cap
        backoff = settings.max_backoff_seconds
    delay = min(backoff, settings.max_backoff_seconds)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_retry_after_seconds))
    return delay


class RetryPolicy:
    """The delivery settings' schedule, with the jitter drawn from ``rng`` (seed it in tests)."""

    def __init__(self, settings: DeliverySettings, *, rng: random.Random | None = None) -> None:
        self._settings = settings
        # Jitter only spreads retries out; it guards no secret.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311

    def delay(self, attempt_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt_number`` (1-based)."""
        jitter = self._rng.uniform(0.0, self._settings.jitter_seconds)
        return retry_delay(self._settings, attempt_number, jitter=jitter, retry_after=retry_after)

    def gives_up(self, first_attempt_at: float, retry_at: float) -> bool:
        """True once the next try would fall beyond the retry horizon."""
        return retry_at - first_attempt_at > self._settings.retry_horizon_seconds
