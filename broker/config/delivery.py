"""``[delivery]``: how the worker sends the platform calls: concurrency, backoff, leases."""

from __future__ import annotations

from pydantic import Field

from broker.config.base import Section


class DeliverySettings(Section):
    # Calls on the wire not yet known to be slow.
    concurrency: int = Field(32, ge=1, le=512)
    # A call still on the wire after this long stops counting against ``concurrency`` and moves
    # to the slow share, so orgs whose calls hang cannot take every slot. Each call still ends
    # at platform.request_timeout_seconds.
    slow_call_seconds: float = Field(5.0, gt=0)
    # The slow share: at most this many slow calls at once. A call that turns slow when it is
    # full is cut short and retried later, like a timed-out call (it may have been applied).
    slow_calls: int = Field(32, ge=0, le=512)
    initial_backoff_seconds: float = Field(2.0, gt=0)
    max_backoff_seconds: float = Field(3600.0, gt=0)
    jitter_seconds: float = Field(1.0, ge=0)
    # Retryable failures keep being retried for this long before a delivery is dead-lettered.
    retry_horizon_seconds: float = Field(3 * 24 * 3600.0, gt=0)
    # A claimed delivery whose process died is taken again after this long. A live worker
    # renews the leases of the deliveries it holds, so only a dead (or stalled) one loses them.
    lease_seconds: float = Field(60.0, gt=0)
    # After the store was unavailable, a worker takes back no other worker's expired lease
    # until the store has been back this long: those leases ran out while nobody could write,
    # and their holders renew them (or record their answers) within a few seconds.
    outage_takeback_grace_seconds: float = Field(15.0, ge=0)
    # Upper bound for an idle worker's nap; new work wakes it at once.
    poll_interval_seconds: float = Field(1.0, gt=0)
    max_retry_after_seconds: float = Field(3600.0, gt=0)
