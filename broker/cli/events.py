"""``broker events list|replay|show``: the webhook events the broker received.

``list`` takes the console's filters (``listing``); ``show`` prints one event, its body
redacted; ``replay`` feeds a stored event (or every event received in a range) through the
pipeline again, the console's replay (``store.replay``), audited as ``cli:<user>``. Replay
writes to the store directly; a running broker sends what it queued within its poll interval.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial

from broker.cli import listing
from broker.cli.id_args import id_arg
from broker.cli.listing import redactor_for
from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.cli.store_target import (
    StoreTarget,
    open_existing,
    parse_target,
    run_write,
    store_target,
)
from broker.core.human_dates import parse_when, show_when
from broker.core.ids import IdKind
from broker.redaction import redacted
from broker.store import ops_reads, replay
from broker.store.engine.tx import Tx
from broker.store.ops_actions import Operator
from broker.store.pipeline import PipelineResult

WHAT = "received webhook events"


def add_commands(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: argparse.ArgumentParser,
    db_option: argparse.ArgumentParser,
) -> None:
    """Register ``broker events`` and its actions (``cli/__init__.py`` calls this)."""
    actions = listing.add_group(subcommands, "events", WHAT, config_option)
    parents = [db_option, config_option]
    listing.add_list(actions, WHAT, list_events, parents)
    add_replay(actions, parents)
    show = actions.add_parser(
        "show", help="one event: outcome, reason, raw body (redacted)", parents=parents
    )
    show.add_argument("event_id", type=id_arg("event_id", IdKind.OPAQUE))
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(handler=partial(show_event, environ=os.environ))


def list_events(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return listing.print_page(
        args,
        environ,
        ops_reads.webhook_events,
        ("received_at",),
        ["received_at", "event_id", "event_type", "subscription_id", "outcome", "reason"],
        drop=("raw_body",),
    )


def show_event(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with open_existing(store_target(args, environ)) as db:
        event = ops_reads.webhook_event(db, args.event_id)
    if event is None:
        print(f"no webhook event with id {args.event_id}", file=sys.stderr)
        return 1
    fields = asdict(event) | {"received_at": show_when(event.received_at)}
    fields["raw_body"] = _pretty(event.raw_body)
    shown: dict[str, object] = redacted(
        fields, redactor_for(args, environ)
    )  # the body after formatting, too
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


def add_replay(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    command = actions.add_parser(
        "replay",
        help="feed a stored event (or every event received in a range) through the pipeline "
        "again; an older event never overrides a newer state",
        parents=parents,
    )
    command.add_argument(
        "event_id", nargs="?", type=id_arg("event_id", IdKind.OPAQUE), help="one event id"
    )
    command.add_argument(
        "--from", dest="since", help="received from this UTC date or time: 2026-11-30"
    )
    command.add_argument("--to", dest="until", help="up to this UTC date (the whole day) or time")
    command.set_defaults(handler=replay_events)


def replay_events(args: argparse.Namespace) -> int:
    if bool(args.event_id) == bool(args.since or args.until):
        print("name one event id, or a range with --from and --to (not both)", file=sys.stderr)
        return 2
    if not args.event_id and not (args.since and args.until):
        print("a range needs both --from and --to", file=sys.stderr)
        return 2
    try:
        since = parse_when(args.since) if args.since else 0.0
        until = parse_when(args.until, end_of_day=True) if args.until else 0.0
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    settings = load_from_args(args)
    if settings is None:
        return EXIT_CONFIG
    chosen = getattr(args, "db", None)  # --db is optional here: the settings name the store
    target: StoreTarget = settings.store.postgres_url or settings.store.path
    who = Operator(f"cli:{getpass.getuser()}")
    now = time.time()

    def replay_all(db: Tx) -> list[tuple[str, PipelineResult]] | None:
        """Every chosen event, in one transaction; None: the range is too wide."""
        ids = [args.event_id] if args.event_id else replay.event_ids_between(db, since, until)
        if len(ids) > replay.MAX_RANGE:
            return None
        return [(i, replay.replay_event(db, who, i, settings=settings, now=now)) for i in ids]

    try:
        with open_existing(parse_target(chosen) if chosen else target) as db:
            replayed = run_write(db, replay_all)
    except LookupError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if replayed is None:
        print(f"more than {replay.MAX_RANGE} events: narrow the range", file=sys.stderr)
        return 2
    ids = [event_id for event_id, _ in replayed]
    results = [result for _, result in replayed]
    for event_id, result in zip(ids, results, strict=True):
        print(f"{event_id}  {result.outcome}  {result.reason or ''}".rstrip())
    outcomes = Counter(str(r.outcome) for r in results)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    print(f"replayed {len(ids)} events" + (f": {summary}" if summary else ""))
    return 0
