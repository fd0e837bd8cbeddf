"""The ``[retention]`` section: how long the broker keeps what it no longer needs, so the
database stops growing (a full disk refuses webhooks). Event ids are never pruned: only the
bodies behind them, so a resent webhook is still recognised as a duplicate."""

from __future__ import annotations

from pydantic import Field

from broker.config.base import Section


class RetentionSettings(Section):
    # Raw webhook bodies: long enough to replay a quarter's events, then only the event id,
    # type, outcome and time stay (the dedup key). 0 keeps bodies forever.
    webhook_body_days: int = Field(90, ge=0, le=36_500)
    # Each platform call's request and answer excerpt (a delivery's attempts).
    attempt_days: int = Field(90, ge=0, le=36_500)
    # Finished deliveries (done, dead, superseded), counted from when they finished. The
    # newest delivery of each subscription is kept whatever its age: the page shows its state
    # and a dead letter stays retryable.
    delivery_days: int = Field(90, ge=0, le=36_500)
    # The page's audit log: over a year, so a yearly plan's whole term stays explained.
    audit_days: int = Field(400, ge=0, le=36_500)
    # Seconds between pruning runs inside ``serve``; 0 prunes only on ``broker prune``.
    interval_seconds: float = Field(3600.0, ge=0)
    # Rows one transaction deletes at most, so a run never holds the writer for long.
    batch_rows: int = Field(500, ge=1, le=50_000)
    # One replica prunes at a time: a lease, taken over after this long should its holder die.
    lease_seconds: float = Field(600.0, gt=0)
