"""The operator's commands on the broker's database: ``broker deliveries list|show|retry``,
``broker backup`` and ``broker check-db``.

They open the store directly (the SQLite file, or PostgreSQL: ``store_target``), so they work
whether or not the service runs, and they need only where the store is. What they print is
redacted again, with the configured secrets when the settings load (zapikey values are hidden
either way): rows may predate the stored redaction.
``cli`` parses their arguments and hands them the environment; nothing here reads it on its own.
Each returns the process's exit code and prints for a person (or, with ``--json``, one object a
line for a script).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from broker.cli import store_commands
from broker.cli.store_target import is_postgres, open_existing, run_write, store_target
from broker.config import config_file, load_settings
from broker.core.human_dates import parse_when, show_when
from broker.redaction import Redactor
from broker.store import dead_letters, delivery_records, generation, integrity, ops_reads
from broker.store.engine import sqlite

_DELIVERY_TIMES = ("created_at", "next_attempt_at", "finished_at")


def deliveries_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """The console's deliveries list: its filters (state, subscription, org, a UTC date range
    on when a delivery was queued), newest first, dates shown as UTC dates."""
    try:
        where = filter_from_args(args)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    with open_existing(store_target(args, environ)) as db:
        page = ops_reads.deliveries(db, where)
    rows = redacted([record.as_dict() for record in page.rows], args, environ)
    rows = [row | {t: show_when(row[t]) for t in _DELIVERY_TIMES} for row in rows]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(
        f"{'id':>6}  {'state':<10} {'action':<7} {'tries':>5}  {'subscription':<22} "
        f"{'created':<20} last error"
    )
    for row in rows:
        print(
            f"{row['id']:>6}  {row['state']:<10} {row['action'] or '-':<7} {row['attempts']:>5}"
            f"  {row['subscription_id']:<22} {row['created_at']:<20} "
            f"{row['last_error'] or ''}"
        )
    if not rows:
        print("(no deliveries" + (f" in state {args.state})" if args.state else ")"))
    if page.has_next:
        print(f"(more: --page {where.page + 1})")
    return 0


def deliveries_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with open_existing(store_target(args, environ)) as db:
        record = delivery_records.get_delivery(db, args.id)
        attempts = delivery_records.delivery_attempts(db, args.id)
    if record is None:
        print(f"no delivery with id {args.id}", file=sys.stderr)
        return 1
    shown = {"delivery": record.as_dict(), "attempts": [a.as_dict() for a in attempts]}
    print(json.dumps(redacted(shown, args, environ), indent=2, default=str))
    return 0


def deliveries_retry(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    try:
        with open_existing(store_target(args, environ)) as db:
            result = run_write(
                db,
                lambda tx: dead_letters.retry_dead(
                    tx, now=time.time(), delivery_id=None if args.all_dead else args.id
                ),
            )
    except (LookupError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(
        f"requeued: {result.requeued or 'none'}; "
        f"superseded by newer deliveries: {result.superseded or 'none'}"
    )
    print("a running broker picks them up within its poll interval")
    return 0


def backup(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    target = store_target(args, environ)
    if is_postgres(target):
        return store_commands.backup_pg(str(target))
    source = Path(target)
    if not source.is_file():
        print(f"no database at {source}", file=sys.stderr)
        return 1
    try:
        sqlite.backup(source, args.destination)
    except FileExistsError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"backed up {source} to {args.destination}")
    marked = _mark_copy(args.destination)
    if marked is not None:
        print(
            f"marked as a backup of generation {marked.restored_from}: a broker started on it "
            "supersedes its pending deliveries and reconciles with billing before sending"
        )
    if args.verify:
        return _report_integrity(args.destination)
    return 0


def _mark_copy(copy: Path) -> generation.Generation | None:
    """Mark the fresh copy as restored, so starting a broker on it is safe (None: the store's
    schema predates the marker; the operator runs ``broker mark-restored`` after restoring)."""
    why = "its schema predates the restore marker"
    try:
        with open_existing(copy) as db:
            if generation.has_marker(db):
                return run_write(
                    db,
                    partial(
                        generation.mark_restored, by=generation.MarkedBy.BACKUP, now=time.time()
                    ),
                )
    except sqlite3.DatabaseError as exc:  # a damaged copy: --verify says more
        why = str(exc)
    print(
        f"the copy is not marked as a backup ({why}): after restoring it, run "
        "`broker migrate` and `broker mark-restored` before starting the broker",
        file=sys.stderr,
    )
    return None


def mark_restored(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """After a restore by other tools (pg_restore, a copied file): the next broker to start
    supersedes the restored outbox and reconciles with billing before it sends anything."""
    with open_existing(store_target(args, environ)) as db:
        if not generation.has_marker(db):
            print(
                "this store's schema predates the restore marker: run `broker migrate` on it "
                "first (with the same --db), then `broker mark-restored`",
                file=sys.stderr,
            )
            return 1
        marked = run_write(
            db, partial(generation.mark_restored, by=generation.MarkedBy.OPERATOR, now=time.time())
        )
    print(
        f"store marked restored (generation {marked.number}, "
        f"stage {marked.stage.value if marked.stage else '-'}): the next broker to start "
        "supersedes its pending deliveries and reconciles with billing before sending"
    )
    return 0


def check_db(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    target = store_target(args, environ)
    if is_postgres(target):
        return store_commands.check_pg(str(target))
    path = Path(target)
    if not path.is_file():
        print(f"no database at {path}: pass --db or set BROKER_STORE__PATH", file=sys.stderr)
        return 1
    return _report_integrity(path)


def _report_integrity(path: Path) -> int:
    problems = integrity.integrity_problems(path)
    if not problems:
        print(f"integrity check of {path}: ok")
        return 0
    print(f"integrity check of {path} FAILED:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def redacted(value: Any, args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """Scrub what is shown again: rows stored by an older broker may still hold a key."""
    return _scrub(value, Redactor(_known_secrets(args, environ)))


def _scrub(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", errors="replace"))
    if isinstance(value, dict):
        return {key: _scrub(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, redact) for item in value]
    return value


def _known_secrets(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """The configured secrets when the settings load; zapikey pairs are hidden regardless."""
    config = config_file(args.config, environ)
    try:
        return load_settings(config, environ).secrets()
    except (ValidationError, ValueError, OSError):
        return []  # the database commands work without settings; pattern redaction still runs


def filter_from_args(args: argparse.Namespace) -> ops_reads.OpsFilter:
    """The console's filters from the command line (human UTC dates; ValueError names a bad one)."""
    return ops_reads.OpsFilter(
        state=args.state,
        subscription_id=args.subscription,
        zgid=args.org,
        event_type=getattr(args, "type", None),
        since=parse_when(args.since) if args.since else None,
        until=parse_when(args.until, end_of_day=True) if args.until else None,
        page=max(args.page, 1),
        page_size=max(args.limit, 1),
    )
