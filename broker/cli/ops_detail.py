"""The console's remaining actions and views from the command line: ``broker parked resolve``
(the console's resolve, audited as ``cli:<user>``), ``broker events show`` (one event, its body
redacted) and the console's filters for ``broker deliveries list``. Human UTC dates in and out."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial
from typing import Any

from broker.cli.id_args import id_arg
from broker.cli.operator import redacted
from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.cli.store_target import open_existing, run_write, store_target
from broker.config import Settings
from broker.core.human_dates import show_when
from broker.core.ids import IdKind, is_user_id, is_zoho_id
from broker.store import ops_actions, ops_reads
from broker.store.engine.tx import Tx
from broker.store.identity import subscription_row

EXIT_USAGE = 2  # a bad id, an unknown or unparked subscription, no confirmation possible


def add_delivery_filters(parser: argparse.ArgumentParser) -> None:
    """``deliveries list``'s filters beyond --state: the console's, with human dates."""
    parser.add_argument("--subscription", help="a billing subscription id")
    parser.add_argument("--org", help="an org's zgid")
    parser.add_argument(
        "--since", help="queued from this UTC date or time: 2026-11-30 or '2026-11-30 14:05'"
    )
    parser.add_argument("--until", help="queued up to this UTC date (the whole day) or time")
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--limit", type=int, default=50, help="rows per page")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def add_actions(name: str, actions: Any, parents: list[argparse.ArgumentParser]) -> None:
    """``events show`` and ``parked resolve`` beside the lists ``ops_commands`` registers."""
    if name == "events":
        show = actions.add_parser(
            "show", help="one event: outcome, reason, raw body (redacted)", parents=parents
        )
        show.add_argument("event_id", type=id_arg("event_id", IdKind.OPAQUE))
        show.add_argument("--json", action="store_true", help="one JSON object")
        show.set_defaults(handler=partial(show_event, environ=os.environ))
    if name == "parked":
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


def show_event(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with open_existing(store_target(args, environ)) as db:
        event = ops_reads.webhook_event(db, args.event_id)
    if event is None:
        print(f"no webhook event with id {args.event_id}", file=sys.stderr)
        return 1
    fields = asdict(event) | {"received_at": show_when(event.received_at)}
    fields["raw_body"] = _pretty(event.raw_body)
    shown: dict[str, Any] = redacted(fields, args, environ)  # the body after formatting, too
    if args.json:
        print(json.dumps(shown))
        return 0
    body = shown.pop("raw_body")
    width = max(len(key) for key in shown)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value if value is not None else '-'}")
    print("raw body:")
    print(body)
    return 0


def _pretty(body: str) -> str:
    """Indented JSON when the body is JSON (easier to read), else the text as received."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


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
