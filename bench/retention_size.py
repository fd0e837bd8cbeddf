"""The SQLite database's size after many webhooks spread over many days, with and without
retention's pruning (1M webhooks of 1.4 KB over 400 simulated days).

    python bench/retention_size.py                       # 100,000 webhooks, both modes
    python bench/retention_size.py --events 1000000      # the full figure (about 10x longer)

Every webhook goes through the real store (``SqliteStore.write`` of ``ingest_webhook``, the job the
webhook edge runs), ``--group`` at a time so they share group-committed transactions, with an
injected clock: webhook i is received at ``start + i * days / events``. The mix: one in
``--subscription-every`` is a ``subscription_renewed`` of one of ``--subscriptions`` orgs (it
updates the snapshot and queues a delivery, which the bench then marks done with one attempt,
as the worker would); the rest are ``invoice_created`` (stored, decide nothing). Every body is
padded to ``--body-bytes``. With pruning, the ``Pruner`` that ``serve`` schedules runs once per
simulated day with the simulated clock and the default ``[retention]``. Local files only, in a
temporary directory removed at the end; bounded by ``--events``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.config import RetentionSettings, Settings
from broker.core.billing_events import parse_webhook_event
from broker.delivery.retention import Pruner
from broker.simulators.payloads import subscription_webhook
from broker.store.engine.tx import Tx
from broker.store.opening import sqlite_store
from broker.store.pipeline import ingest_webhook

DAY = 86_400.0
START = datetime(2027, 1, 1, tzinfo=UTC).timestamp()


def webhook(number: int, at: float, args: argparse.Namespace) -> dict[str, Any]:
    org = number % args.subscriptions
    kind = "subscription_renewed" if number % args.subscription_every == 0 else "invoice_created"
    event = subscription_webhook(
        event_id=str(10**15 + number),
        event_type=kind,
        subscription_id=str(10**17 + org),
        status="live",
        plan_code="bench_1001",
        quantity=1 + number % 7,
        addons=[],
        updated_time=datetime.fromtimestamp(at - 1, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
        customer_id=str(9 * 10**17 + org),
        email=f"owner{org}@example.com",
        zuid=str(6 * 10**10 + org),
        zgid=str(7 * 10**10 + org),
    )
    event["data"]["subscription"]["notes"] = ""
    size = len(json.dumps(event).encode())
    event["data"]["subscription"]["notes"] = "x" * max(0, args.body_bytes - size)
    return event


def finish_deliveries(db: Tx, *, at: float) -> None:
    """What the delivery worker records: each pending delivery done, with one attempt."""
    for row in db.select_all("SELECT id, target_json FROM deliveries WHERE state = 'pending'"):
        db.execute(
            "UPDATE deliveries SET state = 'done', attempts = 1, finished_at = ? WHERE id = ?",
            [at, row["id"]],
        )
        db.execute(
            "INSERT INTO attempts (delivery_id, started_at, latency_ms, method, url,"
            " request_body, status, outcome, response_excerpt) VALUES"
            " (?, ?, 40, 'PUT', 'https://bench.zohoplatform.com/api/subscription', ?, 200,"
            " 'success', '{\"code\": 0}')",
            [row["id"], at, row["target_json"]],
        )


def sizes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0]
        bodies = conn.execute(
            "SELECT COUNT(*) FROM webhook_events WHERE body_pruned_at IS NULL"
        ).fetchone()[0]
    finally:
        conn.close()
    return {
        "file_bytes": path.stat().st_size,
        "used_bytes": (pages - free) * page_size,
        "free_pages": free,
        "events": events,
        "bodies_held": bodies,
    }


async def run(args: argparse.Namespace, directory: Path, *, prune: bool) -> dict[str, Any]:
    path = directory / f"{'pruned' if prune else 'kept'}.db"
    settings = Settings.model_validate(
        {"platform": {"app_domain": "bench", "zapikey": "bench-zapikey"}, "store": {"path": path}}
    )
    store = sqlite_store(path, group_commit_max=settings.store.group_commit_max)
    await store.open()
    clock = [START]
    pruner = Pruner(store, RetentionSettings(), clock=lambda: clock[0])
    step = args.days * DAY / args.events
    next_day = START + DAY
    began = time.monotonic()
    try:
        for first in range(0, args.events, args.group):
            jobs = []
            for number in range(first, min(first + args.group, args.events)):
                at = START + number * step
                event = webhook(number, at, args)
                body = json.dumps(event).encode()
                job = partial(
                    ingest_webhook,
                    event=parse_webhook_event(event),
                    raw_body=body,
                    content_type="application/json",
                    request_id=f"bench-{number}",
                    settings=settings,
                    now=at,
                )
                jobs.append(store.write(job))
            await asyncio.gather(*jobs)
            clock[0] = START + min(first + args.group, args.events) * step
            if clock[0] >= next_day:
                await store.write(partial(finish_deliveries, at=clock[0]))
                if prune:
                    await pruner.run()
                next_day += DAY
    finally:
        await store.close()
    result = {"mode": "pruned" if prune else "kept", **sizes(path)}
    result["seconds"] = round(time.monotonic() - began, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=400.0)
    parser.add_argument("--body-bytes", type=int, default=1400)
    parser.add_argument("--group", type=int, default=256, help="webhooks written at once")
    parser.add_argument("--subscriptions", type=int, default=2000)
    parser.add_argument("--subscription-every", type=int, default=10)
    parser.add_argument("--mode", choices=["both", "kept", "pruned"], default="both")
    args = parser.parse_args()
    if not 1 <= args.events <= 2_000_000:
        parser.error("--events must be 1 to 2,000,000 (the bench is bounded)")
    modes = [False, True] if args.mode == "both" else [args.mode == "pruned"]
    with tempfile.TemporaryDirectory(prefix="retention-bench-") as directory:
        for prune in modes:
            result = asyncio.run(run(args, Path(directory), prune=prune))
            mb = result["file_bytes"] / 1e6
            print(
                f"{result['mode']:>6}: {args.events:,} webhooks over {args.days:g} days -> "
                f"file {mb:,.1f} MB (in use {result['used_bytes'] / 1e6:,.1f} MB, "
                f"{result['free_pages']} free pages), {result['events']:,} event ids, "
                f"{result['bodies_held']:,} bodies held, {result['seconds']} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
