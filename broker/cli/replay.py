"""``broker events replay ID`` and ``broker events replay --from DATE --to DATE``: the console's
replay from the command line (``store.replay``), audited as ``cli:<user>``. It writes to the
database file directly; a running broker sends what it queued within its poll interval."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections import Counter
from typing import Any

from broker.cli.id_args import id_arg
from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.cli.store_target import StoreTarget, open_existing, parse_target, run_write
from broker.core.human_dates import parse_when
from broker.core.ids import IdKind
from broker.store import replay
from broker.store.engine.tx import Tx
from broker.store.ops_actions import Operator
from broker.store.pipeline import PipelineResult


def add_replay(actions: Any, parents: list[argparse.ArgumentParser]) -> None:
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
