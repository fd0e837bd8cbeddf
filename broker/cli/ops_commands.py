"""The operator console's commands: ``broker ops-hash`` (make ``ops.password_hash``),
``broker events list`` (``events replay`` is in ``cli.replay``), ``broker parked list``,
``broker audit list``, ``broker money list`` (the console's filters, human dates in and out,
UTC) and
``broker deliveries retry-now``. Like ``operator``'s commands they open the database file
directly and print redacted rows."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import partial
from typing import Any

from broker.cli import ops_detail
from broker.cli.operator import filter_from_args, redacted
from broker.cli.replay import add_replay
from broker.cli.store_target import open_existing, run_write, store_target
from broker.core.human_dates import show_when
from broker.core.operator_password import hash_password
from broker.store import ops_actions, ops_reads
from broker.store.money_events import money_events_page


def add_commands(
    subcommands: Any, config_option: argparse.ArgumentParser, db_option: argparse.ArgumentParser
) -> None:
    """Register the commands on ``broker``'s parser (``cli/__init__.py`` calls this)."""
    make_hash = subcommands.add_parser(
        "ops-hash",
        help="hash the operator console's password (read from stdin) for ops.password_hash",
    )
    make_hash.set_defaults(handler=ops_hash)
    for name, lister, what in (
        ("events", list_events, "received webhook events"),
        ("parked", list_parked, "parked subscriptions with the reason"),
        ("unmapped", list_unmapped, "subscriptions of the app's product whose plan does not map"),
        ("audit", list_audit, "the audit log (page and console actions)"),
        ("money", list_money, "refunds, chargebacks, voided invoices and credit notes"),
    ):
        command = subcommands.add_parser(name, help=what, parents=[config_option])
        actions = command.add_subparsers(dest="action", required=True)
        listing = actions.add_parser(
            "list", help=f"list {what}, newest first", parents=[db_option, config_option]
        )
        _filters(listing)
        listing.set_defaults(handler=partial(lister, environ=os.environ))
        if name == "events":
            add_replay(actions, [db_option, config_option])
        ops_detail.add_actions(name, actions, [db_option, config_option])


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        help="outcome (events), status (parked, unmapped), result (audit), verdict (money)",
    )
    parser.add_argument("--subscription", help="a billing subscription id")
    parser.add_argument("--org", help="an org's zgid")
    parser.add_argument("--type", help="event type (events, money) or action (audit)")
    parser.add_argument(
        "--since", help="from this UTC date or time: 2026-11-30 or '2026-11-30 14:05'"
    )
    parser.add_argument("--until", help="up to this UTC date (the whole day) or time")
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--limit", type=int, default=50, help="rows per page")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def add_retry_now(actions: Any, parents: list[argparse.ArgumentParser]) -> None:
    retry_now = actions.add_parser(
        "retry-now",
        help="send a pending delivery now instead of after its backoff",
        parents=parents,
    )
    retry_now.add_argument("id", type=int)
    retry_now.set_defaults(handler=partial(deliveries_retry_now, environ=os.environ))


def ops_hash(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Operator password: ")
        if getpass.getpass("Again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("choose a password of at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def list_events(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return _list(
        args,
        environ,
        ops_reads.webhook_events,
        ("received_at",),
        ["received_at", "event_id", "event_type", "subscription_id", "outcome", "reason"],
        drop=("raw_body",),
    )


def list_parked(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return _list(
        args,
        environ,
        ops_reads.parked,
        ("updated_at",),
        ["updated_at", "subscription_id", "status", "customer_id", "reason"],
    )


def list_unmapped(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return _list(
        args,
        environ,
        ops_reads.unmapped,
        ("updated_at",),
        ["updated_at", "subscription_id", "status", "customer_id", "plan_code"],
    )


def list_audit(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return _list(
        args,
        environ,
        ops_reads.audit_log,
        ("at",),
        ["at", "zuid", "zgid", "action", "subscription_id", "result", "detail"],
    )


def list_money(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return _list(
        args,
        environ,
        money_events_page,
        ("received_at",),
        ["received_at", "event_type", "subscription_id", "amount", "of_total", "verdict", "reason"],
    )


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


def _list(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    read: Callable[[Any, ops_reads.OpsFilter], ops_reads.Page[Any]],
    times: tuple[str, ...],
    columns: list[str],
    *,
    drop: tuple[str, ...] = (),
) -> int:
    try:
        where = filter_from_args(args)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    with open_existing(store_target(args, environ)) as db:
        page = read(db, where)
    rows = [{k: v for k, v in asdict(row).items() if k not in drop} for row in page.rows]
    rows = [row | {t: show_when(row[t]) for t in times} for row in redacted(rows, args, environ)]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print("  ".join(columns))
    for row in rows:
        print("  ".join(str(row[c]) if row[c] is not None else "-" for c in columns))
    if not rows:
        print("(nothing matches)")
    if page.has_next:
        print(f"(more: --page {where.page + 1})")
    return 0
