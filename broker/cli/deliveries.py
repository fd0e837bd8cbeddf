"""``broker deliveries list|show|retry|retry-now``: the outbox from the command line.

``list`` takes the console's filters (``listing``); ``retry`` sends dead letters again;
``retry-now`` sends a pending delivery before its backoff ends (audited as ``cli:<user>``).
They write to the store directly; a running broker sends what they queue within its poll
interval. What they print is redacted again.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Mapping
from functools import partial

from broker.cli.listing import filter_from_args, redactor_for, show_time
from broker.cli.store_target import open_existing, run_write, store_target
from broker.redaction import redacted
from broker.store import dead_letters, delivery_records, ops_actions, ops_reads
from broker.store.outbox import DeliveryState

_DELIVERY_TIMES = ("created_at", "next_attempt_at", "finished_at")


def add_commands(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: argparse.ArgumentParser,
    db_option: argparse.ArgumentParser,
    db_help: str,
) -> None:
    """Register ``broker deliveries`` and its actions (``cli/__init__.py`` calls this)."""
    deliveries = subcommands.add_parser(
        "deliveries", help="inspect and retry platform deliveries", parents=[config_option]
    )
    deliveries.add_argument("--db", default=None, help=db_help)
    parents = [db_option, config_option]
    actions = deliveries.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list deliveries, newest first", parents=parents)
    listing.add_argument("--state", choices=[str(state) for state in DeliveryState])
    _add_filters(listing)
    listing.set_defaults(handler=partial(deliveries_list, environ=os.environ))
    show = actions.add_parser("show", help="one delivery with every attempt", parents=parents)
    show.add_argument("id", type=int)
    show.set_defaults(handler=partial(deliveries_show, environ=os.environ))
    retry = actions.add_parser("retry", help="send dead letters again", parents=parents)
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all-dead", action="store_true")
    retry.set_defaults(handler=partial(deliveries_retry, environ=os.environ))
    retry_now = actions.add_parser(
        "retry-now",
        help="send a pending delivery now instead of after its backoff",
        parents=parents,
    )
    retry_now.add_argument("id", type=int)
    retry_now.set_defaults(handler=partial(deliveries_retry_now, environ=os.environ))


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """``list``'s filters beyond --state: the console's, on when a delivery was queued."""
    parser.add_argument("--subscription", help="a billing subscription id")
    parser.add_argument("--org", help="an org's zgid")
    parser.add_argument(
        "--since", help="queued from this UTC date or time: 2026-11-30 or '2026-11-30 14:05'"
    )
    parser.add_argument("--until", help="queued up to this UTC date (the whole day) or time")
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--limit", type=int, default=50, help="rows per page")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


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
    rows = redacted([record.as_dict() for record in page.rows], redactor_for(args, environ))
    rows = [row | {t: show_time(row[t]) for t in _DELIVERY_TIMES} for row in rows]
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
    print(json.dumps(redacted(shown, redactor_for(args, environ)), indent=2, default=str))
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


def deliveries_retry_now(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    who = ops_actions.Operator(f"cli:{getpass.getuser()}")
    try:
        with open_existing(store_target(args, environ)) as db:
            run_write(db, lambda tx: ops_actions.retry_now(tx, who, args.id, now=time.time()))
    except (LookupError, ops_actions.OpsRefused) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"delivery {args.id} is due now; a running broker sends it within its poll interval")
    return 0
