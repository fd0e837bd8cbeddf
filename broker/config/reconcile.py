"""The ``[reconcile]`` section: how often and how the broker re-reads Zoho Billing to find
what its webhooks missed (README: Reconciliation). Off without ``[billing]``."""

from __future__ import annotations

from pydantic import Field

from broker.config.base import Section


class ReconcileSettings(Section):
    # Seconds between scheduled runs in the web process; 0 runs only on demand.
    interval_seconds: float = Field(900.0, ge=0)
    # A run's lock is taken over after this long, should its process have died mid-run.
    lease_seconds: float = Field(1800.0, gt=0)
    # With no stored cursor and no --since, the event backfill reads this many days back.
    first_run_days: int = Field(7, ge=0, le=366)
    # Billing's event list filter and order parameters are [unsure] (docs/contracts.md §4):
    # the names below are the simulator's guess; change them if Zoho answers 400.
    events_since_param: str = Field("date_start", min_length=1)
    events_order_param: str = Field("sort_order", min_length=1)
    events_oldest_first: str = Field("A", min_length=1)
    # The subscriptions sweep lists with this filter (every status, so ended ones are seen).
    subscriptions_filter: str = Field("SubscriptionStatus.All", min_length=1)
    # A hard stop on list pages read per run (200 items a page), should billing never end.
    max_pages: int = Field(100, ge=1, le=10_000)
