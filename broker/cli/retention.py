"""``broker prune [--dry-run]``, ``broker export-customer`` and ``broker erase-customer``.

``prune`` is the run ``serve`` makes on its schedule (the same lease, so it waits for no one
and never runs beside another pruner), against the configured store. ``export-customer`` prints
one customer's rows and raw webhook bodies as JSON (or writes them, 0600, to a new file);
``erase-customer`` deletes them, only when ``--confirm`` repeats the id, leaving an audit row
with counts and no personal data. Both open the store as the operator's other commands do
(``--db``, either backend).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.cli.store_target import open_existing, run_write, store_target
from broker.config import Settings
from broker.delivery.retention import Pruner, PruneReport
from broker.logs import configure_logging
from broker.store import customer_data
from broker.store.opening import open_store
from broker.store.ops_actions import Operator

EXIT_BUSY = 3  # another process is pruning
EXIT_UNCONFIRMED = 2  # erase-customer without --confirm: only counted


def add_commands(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: argparse.ArgumentParser,
    db_option: argparse.ArgumentParser,
) -> None:
    """Register the commands on ``broker``'s parser (``cli/__init__.py`` calls this)."""
    prune_parser = subcommands.add_parser(
        "prune",
        help="delete what [retention] no longer keeps (serve does this on a schedule)",
        parents=[config_option],
    )
    prune_parser.add_argument(
        "--dry-run", action="store_true", help="print what would be pruned; change nothing"
    )
    prune_parser.set_defaults(handler=prune)
    export = subcommands.add_parser(
        "export-customer",
        help="print one customer's stored rows and raw webhook bodies as JSON",
        parents=[db_option, config_option],
    )
    _customer_options(export)
    export.add_argument(
        "--out", type=Path, default=None, help="write to this new file (0600) instead of stdout"
    )
    export.set_defaults(handler=partial(export_customer, environ=os.environ))
    erase = subcommands.add_parser(
        "erase-customer",
        help="delete one customer's stored rows and raw webhook bodies (needs --confirm)",
        parents=[db_option, config_option],
    )
    _customer_options(erase)
    erase.add_argument(
        "--confirm",
        default=None,
        metavar="ID",
        help="the same id again, to erase; without it the command only counts",
    )
    erase.set_defaults(handler=partial(erase_customer, environ=os.environ))


def _customer_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--customer-id", default=None, help="billing's customer id")
    which.add_argument("--zgid", default=None, help="the org's zgid")


def prune(args: argparse.Namespace) -> int:
    settings = load_from_args(args)
    if settings is None:
        return EXIT_CONFIG
    configure_logging(level="WARNING", fmt="json", secrets=settings.secrets())
    report = asyncio.run(_prune(settings, dry_run=args.dry_run))
    print(shown(report))
    return EXIT_BUSY if report.busy else 0


async def _prune(settings: Settings, *, dry_run: bool) -> PruneReport:
    store = open_store(settings.store)
    await store.open()
    try:
        return await Pruner(store, settings.retention, time.time).run(dry_run=dry_run)
    finally:
        await store.close()


def shown(report: PruneReport) -> str:
    if report.busy:
        return "another process is pruning now; nothing was done (try again later)"
    verb = "would prune" if report.dry_run else "pruned"
    lines = [f"{verb} {n} {target}" for target, n in report.counts.items()]
    if not report.counts:
        lines.append("retention keeps everything (every [retention] *_days is 0)")
    if report.lost_lease:
        lines.append("stopped early: another process took the pruning lease")
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> str | None:
    try:
        customer_data.check_ids(args.customer_id, args.zgid)
    except ValueError as exc:
        return str(exc)
    return None


def export_customer(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    problem = _check(args)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if args.out is not None and args.out.exists():
        print(f"{args.out} exists; choose a new file name", file=sys.stderr)
        return 1
    with open_existing(store_target(args, environ)) as db:
        try:
            export = customer_data.export_customer(db, customer_id=args.customer_id, zgid=args.zgid)
        except customer_data.UnknownCustomer as exc:
            print(str(exc), file=sys.stderr)
            return 1
    text = export.to_json() + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    # Personal data: readable by the operator alone, and never over an existing file.
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {sum(len(rows) for rows in export.tables.values())} rows to {args.out}")
    return 0


def erase_customer(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    problem = _check(args)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    named = args.customer_id or args.zgid
    with open_existing(store_target(args, environ)) as db:
        try:
            if args.confirm != named:
                export = customer_data.export_customer(
                    db, customer_id=args.customer_id, zgid=args.zgid
                )
                counts = {table: len(rows) for table, rows in export.tables.items()}
                print(_counts("would erase", counts))
                print(
                    f"nothing was erased: add --confirm {named} to erase these rows",
                    file=sys.stderr,
                )
                return EXIT_UNCONFIRMED
            who = Operator(f"cli:{getpass.getuser()}")
            counts = run_write(
                db,
                partial(
                    customer_data.erase_customer,
                    who=who,
                    customer_id=args.customer_id,
                    zgid=args.zgid,
                    now=time.time(),
                ),
            )
        except customer_data.UnknownCustomer as exc:
            print(str(exc), file=sys.stderr)
            return 1
    print(_counts("erased", counts))
    print(
        "webhook event ids stay (bodies emptied) so a resent webhook is a duplicate; "
        "backups taken before now still hold this customer (docs/operations.md: Retention)"
    )
    return 0


def _counts(verb: str, counts: Mapping[str, int]) -> str:
    return "\n".join(f"{verb} {n} {table}" for table, n in counts.items() if n)
