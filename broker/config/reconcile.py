"""The ``[reconcile]`` section: how often and how the broker re-reads Zoho Billing to find
what its webhooks missed (docs/reconciliation.md). Off without ``[billing]``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from broker.config.base import Section


class OnMissingInBilling(StrEnum):
    """What a run does with a subscription the broker holds as billing that billing answers
    404 for (``reconcile.on_missing_in_billing``)."""

    REPORT = "report"  # report it (run, metric, page), send nothing
    CANCEL = "cancel"  # mark it gone and send the platform its Cancel, once
    ASK = "ask"  # list it in /ops, where an operator's button sends the Cancel


class ReconcileSettings(Section):
    # Seconds between scheduled runs in the web process; 0 runs only on demand.
    interval_seconds: float = Field(900.0, ge=0)
    # A run's lock is taken over after this long, should its process have died mid-run.
    lease_seconds: float = Field(1800.0, gt=0)
    # With no stored cursor and no --since, the event backfill reads this many days back.
    first_run_days: int = Field(7, ge=0, le=366)
    # GET /events documents no filter or order (docs/contracts.md §4), so by default none is
    # sent and the backfill reads pages until it has passed its cursor. Naming a day filter
    # (e.g. "date_start") and an order parameter (e.g. "sort_order" = "A") is only an
    # optimisation: a page that contradicts them turns them off for the run (logged).
    events_since_param: str | None = Field(None, min_length=1)
    events_order_param: str | None = Field(None, min_length=1)
    events_oldest_first: str = Field("A", min_length=1)
    # Items asked for per list page (Zoho's largest is 200).
    per_page: int = Field(200, ge=1, le=200)
    # Events read in full (GET /events/{id}) per run at most; the rest wait for the next run.
    max_event_reads: int = Field(1000, ge=1, le=100_000)
    # The subscriptions sweep lists with this filter (every status, so ended ones are seen).
    subscriptions_filter: str = Field("SubscriptionStatus.All", min_length=1)
    # A hard stop on list pages read per run (200 items a page), should billing never end.
    max_pages: int = Field(100, ge=1, le=10_000)
    # A subscription the broker holds as billing (live, trial, ...) that billing's full list
    # lacks and GET /subscriptions/{id} answers 404 for: only report it, cancel it on the
    # platform at once, or ask an operator (/ops/missing). Asking is the default: a 404 from
    # a mistyped organization_id must not cancel every customer's app.
    on_missing_in_billing: OnMissingInBilling = OnMissingInBilling.ASK
    # On a restored store the worker waits for one successful run; a failed one (billing down,
    # rate-limited, another process reconciling) is tried again after this many seconds.
    restore_retry_seconds: float = Field(60.0, gt=0)
