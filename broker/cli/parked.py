"""``broker parked list|resolve``: subscriptions the broker parked, and binding one by hand.

``list`` takes the console's filters (``listing``); ``resolve`` is the console's resolve (the
chosen org's ids bound, the pipeline decides again), audited as ``cli:<user>``; the Add it
queues is sent by the running broker's worker.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Mapping
from functools import partial

from broker.cli import listing
from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.cli.store_target import open_existing, run_write, store_target
from broker.config import Settings
from broker.core.ids import is_user_id, is_zoho_id
from broker.store import ops_actions, ops_reads
from broker.store.engine.tx import Tx
from broker.store.identity import subscription_row

EXIT_USAGE = 2  # a bad id, an unknown or unparked subscription, no confirmation possible
WHAT = "parked subscriptions with the reason"


def add_commands(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: argparse.ArgumentParser,
    db_option: argparse.ArgumentParser,
) -> None:
    """Register ``broker parked`` and its actions (``cli/__init__.py`` calls this)."""
    actions = listing.add_group(subcommands, "parked", WHAT, config_option)
    parents = [db_option, config_option]
    listing.add_list(actions, WHAT, list_parked, parents)
    resolve = actions.add_parser(
        "resolve",
        help="bind a parked subscription to an org by hand, then send it (audited)",
        parents=parents,
    )
    resolve.add_argument("subscription_id")
    resolve.add_argument("--zgid", required=True, help="the org's zgid")
    resolve.add_argument("--zuid", required=True, help="the owner's zuid in that org")
    resolve.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    resolve.set_defaults(handler=partial(resolve_parked, environ=os.environ))


def list_parked(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return listing.print_page(
        args,
        environ,
        ops_reads.parked,
        ("updated_at",),
        ["updated_at", "subscription_id", "status", "customer_id", "reason"],
    )


def resolve_parked(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """The console's resolve: the chosen org's ids bound, the pipeline decides again, and the
    Add it queues is sent by the running broker's worker."""
    sid, zgid, zuid = args.subscription_id, args.zgid.strip(), args.zuid.strip()
    problems = [f"subscription id {sid!r}: digits only, 1-32"] if not is_zoho_id(sid) else []
    problems += [
        f"--{name} {value!r}: digits only, 1-20"
        for name, value in (("zgid", zgid), ("zuid", zuid))
        if not is_user_id(value)
    ]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_USAGE
    settings = load_from_args(args)  # the decision needs the plan mapping
    if settings is None:
        return EXIT_CONFIG
    with open_existing(store_target(args, environ)) as db:
        return _resolve(db, settings, sid, zgid=zgid, zuid=zuid, confirmed=args.yes)


def _resolve(db: Tx, settings: Settings, sid: str, *, zgid: str, zuid: str, confirmed: bool) -> int:
    found = ops_reads.parked(db, ops_reads.OpsFilter(subscription_id=sid)).rows
    if not found:
        known = subscription_row(db, sid) is not None
        print(f"subscription {sid} is {'not parked' if known else 'unknown'}", file=sys.stderr)
        return EXIT_USAGE
    print(f"subscription {sid} is parked: {found[0].reason}")
    if not found[0].waits_for_org:
        print(ops_actions.quantity_park_refusal(sid), file=sys.stderr)
        return EXIT_USAGE
    if not confirmed and not _confirmed(sid, zgid, zuid):
        return EXIT_USAGE
    who = ops_actions.Operator(f"cli:{getpass.getuser()}")
    try:
        result = run_write(
            db,
            lambda tx: ops_actions.resolve_parked(
                tx, who, sid, zgid=zgid, zuid=zuid, settings=settings, now=time.time()
            ),
        )
    except (LookupError, ops_actions.OpsRefused) as exc:  # resolved meanwhile elsewhere
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(
        f"resolved to org {zgid}: {result.outcome}"
        + (f" ({result.reason})" if result.reason else "")
    )
    if result.delivery_id is not None:
        print(
            f"delivery {result.delivery_id} queued; a running broker sends it within its poll "
            "interval"
        )
    return 0


def _confirmed(sid: str, zgid: str, zuid: str) -> bool:
    if not sys.stdin.isatty():
        print("no terminal to confirm on: pass --yes to resolve", file=sys.stderr)
        return False
    answer = input(f"Bind {sid} to org {zgid} (owner {zuid}) and send it? [y/N] ")
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing changed", file=sys.stderr)
    return False
