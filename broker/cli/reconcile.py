"""``broker reconcile [--since DATE] [--dry-run]``: one reconciliation run from the command
line, against the configured billing and database, printing the table of differences."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date

import aiohttp

from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.clients.billing import BillingClient
from broker.clients.billing_reads import BillingReads
from broker.config import Settings
from broker.delivery.daily_budget import DailyBudget
from broker.delivery.reconcile import ReconcileDeps, RunOutcome, RunReport, run_reconciliation
from broker.logs import configure_logging
from broker.metrics import Metrics
from broker.store.opening import open_store

EXIT_BUSY = 3  # another process is reconciling
EXIT_INCOMPLETE = 4  # billing was busy or failed; the next run carries on


def since_day(text: str) -> date:
    """argparse type: a YYYY-MM-DD day, with a clear message otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def reconcile(args: argparse.Namespace) -> int:
    settings = load_from_args(args)
    if settings is None:
        return EXIT_CONFIG
    configure_logging(level="WARNING", fmt="json", secrets=settings.secrets())
    if settings.billing is None:
        print(
            "reconciliation is off: it reads Zoho Billing, and [billing] is not configured",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    report = asyncio.run(_run(settings, since=args.since, dry_run=args.dry_run))
    print(table(report))
    if report.outcome is RunOutcome.BUSY:
        return EXIT_BUSY
    return 0 if report.outcome is RunOutcome.DONE else EXIT_INCOMPLETE


async def _run(settings: Settings, *, since: date | None, dry_run: bool) -> RunReport:
    assert settings.billing is not None
    store = open_store(settings.store)
    await store.open()
    try:
        async with aiohttp.ClientSession() as session:
            # The command spends from the same daily budget as the servers (background share).
            budget = DailyBudget(store, settings.billing, time.time)
            client = BillingClient(session, settings.billing, gate=budget)
            reads = BillingReads(client, settings.reconcile)
            deps = ReconcileDeps(store, reads, settings, Metrics(), time.time)
            return await run_reconciliation(deps, since=since, dry_run=dry_run)
    finally:
        await store.close()


def table(report: RunReport) -> str:
    """The run's summary and one line per difference (what billing says, what the broker had,
    what was queued), readable in a terminal."""
    if report.outcome is RunOutcome.BUSY:
        return "another process is reconciling now; nothing was read (try again later)"
    mode = "dry run: nothing was changed" if report.dry_run else "changes were queued"
    c = report.counts
    lines = [
        f"run {report.run_id}: {report.outcome.value} ({mode}); events since {report.since}",
        f"read {c.events_read} events, {c.subscriptions_read} subscriptions listed, "
        f"{c.full_reads} read in full, {c.customers_read} customers",
    ]
    if c.missing_in_billing:
        lines.append(
            f"{c.missing_in_billing} held as billing that billing answers 404 for "
            "(missing_in_billing): see /ops/missing"
        )
    if report.window_note:
        lines.append(report.window_note)
    if report.error:
        lines.append(f"stopped early: {report.error}")
    if report.stopped_early:
        lines.append(f"not everything was read: {report.stopped_early}")
    if not report.drift:
        lines.append("no differences found")
        return "\n".join(lines)
    header = ("subscription", "difference", "billing", "broker", "action")
    body = [(d.subscription_id, d.kind.value, d.billing, d.broker, d.action) for d in report.drift]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    for row in [header, *body]:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
