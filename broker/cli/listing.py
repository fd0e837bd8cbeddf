"""A page of the console's rows on the command line: the console's filters (human UTC dates in
and out), the rows scrubbed of secrets again, printed for a person or as JSON lines.

Every list command (``deliveries``, ``events``, ``parked``, ``unmapped``, ``audit``, ``money``)
goes through here, so they filter, page and redact alike. They open the store directly, so they
work whether or not the service runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from pydantic import ValidationError

from broker.cli.store_target import open_existing, store_target
from broker.config import config_file, load_settings
from broker.core.human_dates import parse_when, show_when
from broker.redaction import Redactor, redacted
from broker.store import ops_reads
from broker.store.engine.tx import Tx

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# A page's row: one of the console's frozen read records, shown through ``asdict``.
Row = TypeVar("Row", bound="DataclassInstance")


class Lister(Protocol):
    """A list command: the parsed arguments and the environment in, the exit code out."""

    def __call__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> int: ...


def add_group(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    what: str,
    config_option: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """``broker NAME``, a group of actions; answers its sub-parsers for them."""
    command = subcommands.add_parser(name, help=what, parents=[config_option])
    return command.add_subparsers(dest="action", required=True)


def add_list(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    what: str,
    lister: Lister,
    parents: list[argparse.ArgumentParser],
) -> None:
    """``broker NAME list`` with the console's filters."""
    listing = actions.add_parser("list", help=f"list {what}, newest first", parents=parents)
    add_filters(listing)
    listing.set_defaults(handler=partial(lister, environ=os.environ))


def add_filters(parser: argparse.ArgumentParser) -> None:
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


def print_page(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    read: Callable[[Tx, ops_reads.OpsFilter], ops_reads.Page[Row]],
    times: tuple[str, ...],
    columns: list[str],
    *,
    drop: tuple[str, ...] = (),
) -> int:
    """One page of ``read``'s rows: ``times`` shown as UTC dates, ``drop`` left out."""
    try:
        where = filter_from_args(args)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    with open_existing(store_target(args, environ)) as db:
        page = read(db, where)
    rows = [{k: v for k, v in asdict(row).items() if k not in drop} for row in page.rows]
    rows = [
        row | {t: show_time(row[t]) for t in times}
        for row in redacted(rows, redactor_for(args, environ))
    ]
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


def show_time(value: object) -> str:
    """A row's epoch column as a UTC date (``-`` when there is none)."""
    return show_when(value if isinstance(value, int | float) else None)


def redactor_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Redactor:
    """Scrub what is shown again, with the configured secrets when the settings load: rows
    stored by an older broker may still hold a key."""
    return Redactor(_known_secrets(args, environ))


def _known_secrets(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """The configured secrets when the settings load; zapikey pairs are hidden regardless."""
    config = config_file(args.config, environ)
    try:
        return load_settings(config, environ).secrets()
    except (ValidationError, ValueError, OSError):
        return []  # the database commands work without settings; pattern redaction still runs
