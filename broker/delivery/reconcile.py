"""Reconciliation: find and repair what billing's webhooks missed (docs/reconciliation.md).

A run takes the lock (one run at a time across processes), then in four passes reads billing
and feeds what it finds through the state pipeline: the **event backfill** reads ``GET /events``
from the stored cursor and feeds each subscription event never received, as a webhook would be
(deduplicated on ``event_id``); the **state sweep** lists subscriptions, reads in full each one
that differs from what is stored, and feeds that; the **missing** pass reads alone each one the
broker holds as billing that the full list lacks, and a 404 is ``missing_in_billing``;
**parked** subscriptions have their billing customer read again. Billing's reads share the
client's retries and 429 pause. A dry run reads the same but only decides. Every run is
recorded with each drift found and what it queued. The run renews its lease as it goes
(``reconcile_lease``); if another process took the lock meanwhile, the run stops as
``lost_lock`` before writing anything more.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import partial

import structlog

from broker.clients.billing_pages import skip_row
from broker.clients.billing_reads import BillingReads
from broker.config import OnMissingInBilling, ReconcileSettings, Settings
from broker.core.billing_budget import CallPriority, spending_as
from broker.core.decide import Outcome
from broker.core.org_billing import bills
from broker.core.ours import our_products
from broker.core.reconcile import (
    Drift,
    DriftKind,
    EventOrder,
    ListedEvent,
    MissingState,
    drift_of,
    event_body,
    is_ours,
    is_subscription_event,
    is_subscription_type,
    listed_event,
    listed_item,
    listed_subscription,
    within_event_window,
)
from broker.delivery.reconcile_lease import RunLease
from broker.errors import BillingBudgetSpent, BillingNotFound, BillingRateLimited, BrokerError
from broker.metrics import Metrics
from broker.store import reconcile as rows
from broker.store import reconcile_missing as missing_rows
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Tx
from broker.store.pipeline import PipelineResult
from broker.store.products import learned_products

log = structlog.get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]


class RunOutcome(StrEnum):
    DONE = "done"
    BUSY = "busy"  # another process holds the lock
    RATE_LIMITED = "rate_limited"  # billing said 429; the next run carries on
    # Today's billing budget for background work is spent (billing.background_stop_percent):
    # nothing more is read until the next budget day.
    BUDGET_SPENT = "budget_spent"
    FAILED = "failed"  # billing or the store failed; nothing half-recorded
    LOST_LOCK = "lost_lock"  # its lease ran out and another process took the lock: it stopped


@dataclass
class RunReport:
    """What a run did: the console and ``broker reconcile`` show it."""

    outcome: RunOutcome
    run_id: int | None = None
    dry_run: bool = False
    since: str | None = None
    counts: rows.RunCounts = field(default_factory=rows.RunCounts)
    drift: list[Drift] = field(default_factory=list)
    error: str | None = None
    # The run stopped reading at a bound (list pages, events read in full) before the end.
    stopped_early: str | None = None
    # Asked to read further back than billing keeps events: what it did instead.
    window_note: str | None = None


@dataclass(frozen=True)
class ReconcileDeps:
    store: StoreBackend
    reads: BillingReads
    settings: Settings
    metrics: Metrics
    clock: Callable[[], float]
    owner: str = field(default_factory=lambda: f"reconcile-{secrets.token_hex(6)}")


async def run_reconciliation(
    deps: ReconcileDeps, *, since: date | None = None, dry_run: bool = False, trigger: str = "cli"
) -> RunReport:
    """One run, if no other process is running one (else outcome ``busy``, nothing read).
    Its billing calls spend the background share of the daily budget, which stops first."""
    with spending_as(CallPriority.BACKGROUND):
        return await _run(deps, since=since, dry_run=dry_run, trigger=trigger)


async def _run(
    deps: ReconcileDeps, *, since: date | None, dry_run: bool, trigger: str
) -> RunReport:
    settings, now = deps.settings.reconcile, deps.clock()
    taken = await deps.store.write(
        lambda db: rows.take_lock(db, deps.owner, now=now, lease=settings.lease_seconds)
    )
    if not taken:
        log.info("reconcile.busy", trigger=trigger)
        deps.metrics.reconcile_runs.labels(RunOutcome.BUSY.value).inc()
        return RunReport(RunOutcome.BUSY, dry_run=dry_run)
    lease = RunLease(
        deps.store, deps.owner, seconds=settings.lease_seconds, clock=deps.clock, taken_at=now
    )
    try:
        return await _locked_run(deps, lease, since=since, dry_run=dry_run, trigger=trigger)
    finally:
        await deps.store.write(lambda db: rows.release_lock(db, deps.owner))


async def _locked_run(
    deps: ReconcileDeps, lease: RunLease, *, since: date | None, dry_run: bool, trigger: str
) -> RunReport:
    start_day = since or await _cursor_day(deps)
    today = datetime.fromtimestamp(deps.clock(), UTC).date()
    oldest, window_note = within_event_window(start_day, today)
    report = RunReport(RunOutcome.DONE, dry_run=dry_run, since=oldest.isoformat())
    report.window_note = window_note
    if window_note is not None:
        log.warning(
            "reconcile.beyond_event_window", asked=start_day.isoformat(), since=report.since
        )
    start_day = oldest
    report.run_id = await deps.store.write(
        lambda db: rows.start_run(
            db, trigger=trigger, dry_run=dry_run, since=report.since, now=deps.clock()
        )
    )
    log.info("reconcile.started", run_id=report.run_id, since=report.since, dry_run=dry_run)
    try:
        next_day = await _backfill(deps, lease, report, start_day)
        listed = await _sweep(deps, lease, report)
        if listed is not None:
            await _missing(deps, lease, report, listed)
        await _parked(deps, lease, report)
        if not dry_run and next_day is not None:
            await lease.write(partial(rows.save_cursor, day=next_day))
    except rows.LockLost:
        report.outcome = RunOutcome.LOST_LOCK
        report.error = "another process took the lock after this run's lease ran out"
        log.warning("reconcile.lost_lock", run_id=report.run_id, owner=deps.owner)
    except BillingBudgetSpent as error:
        report.outcome = RunOutcome.BUDGET_SPENT
        report.error = (
            f"stopped for today: {error.message}; reconciliation resumes at the next budget day "
            "(billing.background_stop_percent)"
        )
        log.warning("reconcile.budget_spent", run_id=report.run_id, reason=error.details)
    except BillingRateLimited as error:
        report.outcome, report.error = RunOutcome.RATE_LIMITED, str(error)
    except BrokerError as error:
        report.outcome, report.error = RunOutcome.FAILED, str(error)
    run_id = report.run_id
    await deps.store.write(
        lambda db: rows.finish_run(
            db,
            run_id,
            outcome=report.outcome.value,
            counts=report.counts,
            drift=report.drift,
            error=report.error,
            now=deps.clock(),
        )
    )
    deps.metrics.reconcile_runs.labels(report.outcome.value).inc()
    log.info(
        "reconcile.finished",
        run_id=run_id,
        outcome=report.outcome.value,
        drift=len(report.drift),
        error=report.error,
    )
    return report


async def _cursor_day(deps: ReconcileDeps) -> date:
    stored = await deps.store.read(rows.cursor)
    if stored:
        return date.fromisoformat(stored)
    today = datetime.fromtimestamp(deps.clock(), UTC).date()
    return today - timedelta(days=deps.settings.reconcile.first_run_days)


@dataclass
class EventScan:
    """What one pass over the events list found: the events to read in full, oldest first."""

    wanted: list[ListedEvent] = field(default_factory=list)
    last_day: date | None = None  # the newest day listed on or after the cursor
    complete: bool = False  # the list was read past the cursor (or to its end)
    newest_first: bool | None = None


async def _backfill(
    deps: ReconcileDeps, lease: RunLease, report: RunReport, start_day: date
) -> str | None:
    """Feed each subscription event from ``start_day`` on that the broker never received;
    return the day the next run starts from (days have no time: it is read again), or None to
    keep the cursor where it was."""
    scan = await _scan_events(deps, lease, report, start_day)
    budget = deps.settings.reconcile.max_event_reads
    to_read, left = scan.wanted[:budget], scan.wanted[budget:]
    for listed in to_read:
        await _feed_listed(deps, lease, report, listed)
    # Everything from the cursor up to the newest day listed was seen: the whole way past the
    # cursor, or, oldest first, every page up to where the run stopped.
    covered = scan.complete or scan.newest_first is False
    if left:
        _stopped_early(
            report,
            f"read {budget} events in full (reconcile.max_event_reads); "
            f"{len(left)} more wait for the next run",
        )
        # Fed oldest first: the next run starts at the last day fed (read again, deduplicated).
        return to_read[-1].day.isoformat() if covered else None
    if covered and scan.last_day is not None:
        return scan.last_day.isoformat()
    return None


async def _scan_events(
    deps: ReconcileDeps, lease: RunLease, report: RunReport, start_day: date
) -> EventScan:
    """Read the events list until it has passed ``start_day``, whichever way it runs."""
    settings = deps.settings.reconcile
    params = _event_filter(settings, start_day)
    while True:
        scan, contradiction = await _scan_once(deps, lease, report, start_day, params)
        if contradiction is None:
            return scan
        log.warning(
            "reconcile.events_filter_ignored", run_id=report.run_id, why=contradiction,
            params=sorted(params),
        )  # fmt: skip
        params = {}  # read again without it: the documented list, page by page


async def _scan_once(
    deps: ReconcileDeps,
    lease: RunLease,
    report: RunReport,
    start_day: date,
    params: dict[str, str],
) -> tuple[EventScan, str | None]:
    """One pass; the second value says how a page contradicted the filter sent (then the
    pass stops early and is to be made again without it)."""
    scan, order, found = EventScan(), EventOrder(), dict[str, ListedEvent]()
    position: dict[str, int] = {}
    page = None
    async for page in deps.reads.event_pages(params):
        await lease.keep()
        passed = False
        for item in page.items:
            report.counts = replace(report.counts, events_read=report.counts.events_read + 1)
            listed = listed_item(item)
            if listed is None:
                log.warning(
                    "reconcile.unreadable_event", run_id=report.run_id,
                    event_id=str(item.get("event_id"))[:40], why="no usable id, type or time",
                )  # fmt: skip
                continue
            order.see(listed.at)
            if listed.day < start_day:
                if params:
                    return scan, f"event {listed.event_id} of {listed.day} is before {start_day}"
                passed = True
                continue
            if params and order.newest_first and _asked_oldest_first(deps, params):
                return scan, "the list runs newest first although oldest first was asked"
            position.setdefault(listed.event_id, len(position))
            found.setdefault(listed.event_id, listed)
            scan.last_day = max(scan.last_day or listed.day, listed.day)
        if passed and order.newest_first and not order.contradicted:
            scan.complete = True  # newest first: everything after this is older still
            break
    else:
        scan.complete = page is None or not page.more
    if not scan.complete:
        _stopped_early(
            report,
            f"the events list did not end within {deps.settings.reconcile.max_pages} "
            "pages (reconcile.max_pages)",
        )
    scan.newest_first = None if order.contradicted else order.newest_first
    ours = [e for e in found.values() if is_subscription_type(e.event_type)]
    known = await deps.store.read(partial(rows.known_events, event_ids=[e.event_id for e in ours]))
    candidates = [e for e in ours if e.event_id not in known]

    def oldest_first(event: ListedEvent) -> tuple[datetime, int]:
        # Events of one time (event_time is often a bare day) keep the list's order, read
        # backwards when it runs newest first; with no order seen, Zoho's ids decide (they
        # have grown with time wherever we looked [unsure]).
        if order.newest_first is None:
            return event.at, int(event.event_id)
        sign = -1 if order.newest_first else 1
        return event.at, sign * position[event.event_id]

    scan.wanted = sorted(candidates, key=oldest_first)
    return scan, None


def _event_filter(settings: ReconcileSettings, start_day: date) -> dict[str, str]:
    """The optional filter the settings name (none by default: none is documented)."""
    params: dict[str, str] = {}
    if settings.events_since_param:
        params[settings.events_since_param] = start_day.isoformat()
    if settings.events_order_param:
        params[settings.events_order_param] = settings.events_oldest_first
    return params


def _asked_oldest_first(deps: ReconcileDeps, params: dict[str, str]) -> bool:
    return deps.settings.reconcile.events_order_param in params


async def _feed_listed(
    deps: ReconcileDeps, lease: RunLease, report: RunReport, listed: ListedEvent
) -> None:
    """Read one listed event in full and feed it; nothing is recorded before its payload is
    read, so an event read badly is not later mistaken for a duplicate."""
    try:
        document = await deps.reads.event(listed.event_id)
    except BillingNotFound:
        log.warning("reconcile.event_gone", run_id=report.run_id, event_id=listed.event_id)
        return
    await lease.keep()
    event = listed_event(document)
    if (
        event is None
        or event.event_id != listed.event_id
        or not is_subscription_event(event)
        or event.data.subscription is None
    ):
        log.warning(
            "reconcile.unreadable_event", run_id=report.run_id, event_id=listed.event_id,
            why="its GET /events/{id} carried no payload of that subscription event",
        )  # fmt: skip
        return
    feed = partial(
        rows.feed_event,
        event=event,
        raw_body=event_body(document),
        run_id=report.run_id or 0,
        settings=deps.settings,
        now=deps.clock(),
        dry_run=report.dry_run,
    )
    result = await lease.write(feed)
    report.counts = replace(report.counts, events_fed=report.counts.events_fed + 1)
    sid = result.subscription_id or event.data.subscription.subscription_id
    drift = Drift(sid, DriftKind.MISSED_EVENT, event.event_type, "not received")
    _found(deps, report, drift, result)


def _stopped_early(report: RunReport, why: str) -> None:
    report.stopped_early = f"{report.stopped_early}; {why}" if report.stopped_early else why
    log.warning("reconcile.stopped_early", run_id=report.run_id, why=why)


async def _sweep(deps: ReconcileDeps, lease: RunLease, report: RunReport) -> frozenset[str] | None:
    """Read in full, and feed, each of this app's subscriptions that differs from the store;
    return every id billing listed, or None when the list did not end within its bound."""
    stored = await deps.store.read(rows.stored_views)
    app_domain = deps.settings.platform.app_domain
    products = our_products(
        deps.settings.platform.product_id, await deps.store.read(learned_products)
    )
    page = None
    listed: set[str] = set()
    async for page in deps.reads.subscription_pages():
        for position, item in zip(page.positions, page.items, strict=True):
            await lease.keep()
            report.counts = replace(
                report.counts, subscriptions_read=report.counts.subscriptions_read + 1
            )
            listed.add(str(item.get("subscription_id")))
            if not is_ours(item, app_domain, products):
                continue
            subscription = listed_subscription(item)
            if isinstance(subscription, list):
                # Passed over as before (the rest of the list still counts), but said.
                where = f"subscriptions[{position}]"
                skip_row("subscriptions", position, item, [f"{where}.{p}" for p in subscription])
                continue
            mine = stored.get(str(item.get("subscription_id")))
            drift = drift_of(subscription, mine)
            if drift is None:
                continue
            document = await deps.reads.subscription(drift.subscription_id)
            report.counts = replace(report.counts, full_reads=report.counts.full_reads + 1)
            result = await lease.write(
                partial(
                    rows.feed_read,
                    document=document,
                    floor=mine.updated_at if mine else None,
                    settings=deps.settings,
                    now=deps.clock(),
                    dry_run=report.dry_run,
                )
            )
            _found(deps, report, drift, result)
    if page is not None and page.more:
        why = f"the subscriptions list did not end within {deps.settings.reconcile.max_pages} pages"
        _stopped_early(report, f"{why} (reconcile.max_pages); nothing is called missing")
        return None
    return frozenset(listed)


async def _missing(
    deps: ReconcileDeps, lease: RunLease, report: RunReport, listed: frozenset[str]
) -> None:
    """The other direction: each subscription the broker holds as billing that billing's full
    list lacks is read alone; a 404 is ``missing_in_billing``, handled as
    ``reconcile.on_missing_in_billing`` says. Only the absent ones are read."""
    if not report.dry_run:
        back = await lease.write(partial(missing_rows.found_again, listed=listed))
        for sid in back:
            log.info("reconcile.found_in_billing_again", run_id=report.run_id, subscription_id=sid)
    stored = await deps.store.read(rows.stored_views)
    absent = sorted(
        (view for sid, view in stored.items() if bills(view.status) and sid not in listed),
        key=lambda view: view.subscription_id,
    )
    for view in absent:
        await lease.keep()
        broker = " ".join(x for x in (view.status, view.plan_code) if x)
        try:
            document = await deps.reads.subscription(view.subscription_id)
        except BillingNotFound:
            report.counts = replace(
                report.counts,
                full_reads=report.counts.full_reads + 1,
                missing_in_billing=report.counts.missing_in_billing + 1,
            )
            await _missing_one(deps, lease, report, view.subscription_id, broker)
            continue
        report.counts = replace(report.counts, full_reads=report.counts.full_reads + 1)
        # Billing has it although its list did not show it: feed what it says, like a drift.
        drift = drift_of(document, view) or Drift(
            view.subscription_id, DriftKind.CHANGED, "read, not listed", broker
        )
        result = await lease.write(
            partial(
                rows.feed_read,
                document=document,
                floor=view.updated_at,
                settings=deps.settings,
                now=deps.clock(),
                dry_run=report.dry_run,
            )
        )
        if not report.dry_run:
            await lease.write(partial(missing_rows.forget, subscription_id=view.subscription_id))
        _found(deps, report, drift, result)


async def _missing_one(
    deps: ReconcileDeps, lease: RunLease, report: RunReport, sid: str, broker: str
) -> None:
    """One subscription billing answered 404 for: recorded, and then reported, cancelled once,
    or left for an operator, as the setting says. Never "agreed"."""
    policy = deps.settings.reconcile.on_missing_in_billing
    drift = Drift(sid, DriftKind.MISSING_IN_BILLING, "not found (404)", broker)
    state = {
        OnMissingInBilling.REPORT: MissingState.REPORTED,
        OnMissingInBilling.CANCEL: MissingState.CANCELLED,
        OnMissingInBilling.ASK: MissingState.ASKED,
    }[policy]
    if report.dry_run:
        action = "would cancel" if state is MissingState.CANCELLED else state.value
        _found(deps, report, drift, PipelineResult(Outcome.UNCHANGED, action, sid), action=action)
        return
    first = MissingState.REPORTED if state is MissingState.CANCELLED else state
    now, run_id = deps.clock(), report.run_id or 0

    def record_and_handle(db: Tx) -> tuple[MissingState, PipelineResult | None]:
        found = missing_rows.record(db, sid, broker=broker, state=first, run_id=run_id, now=now)
        if state is not MissingState.CANCELLED or found.state is MissingState.CANCELLED:
            return found.state, None
        sent = missing_rows.send_cancel(
            db, sid, settings=deps.settings, now=now, by=f"reconcile:{run_id}"
        )
        return MissingState.CANCELLED, sent

    held, sent = await lease.write(record_and_handle)
    if sent is not None:
        _found(deps, report, drift, sent, action=f"cancelled: {sent.outcome.value}")
        return
    action = {
        MissingState.REPORTED: "reported",
        MissingState.ASKED: "asked: waiting for an operator (/ops/missing)",
        MissingState.CANCELLED: "cancelled earlier",
    }[held]
    _found(deps, report, drift, PipelineResult(Outcome.UNCHANGED, action, sid), action=action)


async def _parked(deps: ReconcileDeps, lease: RunLease, report: RunReport) -> None:
    """Read each parked subscription's billing customer again; feed what now resolves."""
    for sid, customer_id, billing_json in await deps.store.read(rows.parked):
        if not customer_id or not billing_json:
            continue
        await lease.keep()
        customer = await deps.reads.customer(customer_id)
        report.counts = replace(report.counts, customers_read=report.counts.customers_read + 1)
        if customer is None:
            continue
        document = rows.snapshot_with_customer(billing_json, customer)
        result = await lease.write(
            partial(
                rows.feed_read,
                document=document,
                floor=0.0,
                settings=deps.settings,
                now=deps.clock(),
                dry_run=report.dry_run,
            )
        )
        if result.outcome is Outcome.QUEUED:
            drift = Drift(sid, DriftKind.PARKED_RESOLVED, f"customer {customer_id}", "parked")
            _found(deps, report, drift, result)


def _found(
    deps: ReconcileDeps,
    report: RunReport,
    drift: Drift,
    result: PipelineResult,
    *,
    action: str | None = None,
) -> None:
    if action is None:
        action = result.outcome.value
        if report.dry_run and result.outcome is Outcome.QUEUED:
            action = "would queue"
    drift = replace(drift, action=action, delivery_id=result.delivery_id)
    report.drift.append(drift)
    deps.metrics.reconcile_drift.labels(drift.kind.value).inc()
    log.warning(
        "reconcile.drift",
        run_id=report.run_id,
        subscription_id=drift.subscription_id,
        kind=drift.kind.value,
        billing=drift.billing,
        broker=drift.broker,
        action=action,
        delivery_id=drift.delivery_id,
        dry_run=report.dry_run,
    )


def schedule_status(settings: Settings) -> str:
    """How reconciliation runs with these settings, for check-config and /readyz."""
    if settings.billing is None:
        return "off: no [billing] section"
    interval = settings.reconcile.interval_seconds
    if interval <= 0:
        return "on demand only (reconcile.interval_seconds = 0)"
    return f"every {interval:g} s"


async def run_on_schedule(
    deps: ReconcileDeps, *, interval: float, sleep: Sleep = asyncio.sleep
) -> None:
    """Run every ``interval`` seconds until cancelled; a failed run waits for the next."""
    while True:
        await sleep(interval)
        try:
            await run_reconciliation(deps, trigger="schedule")
        except BrokerError as error:  # the store is down: say so, try again next time
            log.error("reconcile.run_failed", error=str(error))
