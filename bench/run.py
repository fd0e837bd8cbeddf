"""Throughput and latency benchmark of the broker's webhook ingest and delivery, in one command.

    python bench/run.py            # full: 20,000 measured requests per phase
    python bench/run.py --quick    # 3,000 measured requests per phase

It measures, in one run:

(a) baseline: a bare aiohttp app whose POST handler reads the body and answers
    ``{"status": "accepted"}``; what the machine and aiohttp can do with no work at all;
(b) ingest: ``POST /webhooks/billing`` of the real broker app (``broker.app.create_app``), SQLite
    with synchronous=FULL and default group commit, distinct valid ``subscription_created`` events,
    each acknowledged only once durable; the platform simulator serves the Developer Console, so
    deliveries run at the same time;
(c) end-to-end: from the first measured webhook posted to the simulator having applied the Add of
    every acknowledged event; then checks every acknowledged event was applied exactly once.

Each server runs in its own process (``python bench/run.py --serve ROLE``): the load generator in
this process must not share an event loop (or, on 2 cores, a core) with the server it measures.
Latency is measured per request with ``time.perf_counter`` around post + read of the answer.

Nothing here imports ``tests``: payloads come from ``broker/simulators/payloads.py``, as theirs do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` as a package

from bench.load import run_baseline, run_broker
from bench.report import machine_info, report
from bench.servers import RESULTS_FILE, Processes, serve_main

FULL = {"requests": 20_000, "warmup": 1_000}
QUICK = {"requests": 3_000, "warmup": 300}


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def bench_main(args: argparse.Namespace) -> int:
    counts = dict(QUICK if args.quick else FULL)
    if args.requests:
        counts["requests"] = args.requests
    if args.warmup is not None:
        counts["warmup"] = args.warmup
    base = Path(args.data_dir) if args.data_dir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="broker-bench-", dir=base))
    procs = Processes(workdir)
    info = machine_info(workdir)
    # `kill` (SIGTERM) of the benchmark must stop its servers too: unwind through `finally`.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    overrides = sorted(k for k in os.environ if k.upper().startswith("BROKER_"))
    if overrides:
        print(f"note: broker settings from the environment apply: {', '.join(overrides)}")
    print(
        f"running: baseline, then broker (simulator: {args.simulator}); "
        f"{counts['requests']:,} requests each; work dir {workdir}",
        flush=True,
    )
    try:
        baseline = run_baseline(args, procs, counts)
        print(f"  (a) done: {baseline.rate:,.0f} req/s", flush=True)
        run = run_broker(args, procs, counts)
        print(f"  (b) done: {run.ingest.rate:,.0f} req/s", flush=True)
        summary = report(args, info, baseline, run, counts)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        return 130
    except (RuntimeError, aiohttp.ClientError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {workdir} (databases, server logs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summary["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()[:2]]
    line = json.dumps(summary, sort_keys=True)
    out = Path(args.json_out) if args.json_out else RESULTS_FILE
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"JSON (also in {out}):")
    print(line)
    return 0 if summary["checks"]["exactly_once"] and summary["checks"]["no_errors"] else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 requests instead of 20,000")
    parser.add_argument("--requests", type=int, default=0, help="measured requests per phase")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per phase")
    parser.add_argument("--concurrency", type=int, default=50, help="connections (default 50)")
    parser.add_argument(
        "--simulator",
        choices=("separate", "inprocess"),
        default="separate",
        help="run the Developer Console simulator in its own process (default) or in the "
        "broker's process and event loop",
    )
    parser.add_argument(
        "--broker-log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="the broker's log level (default INFO, as in production)",
    )
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds to wait for deliveries"
    )
    parser.add_argument("--data-dir", help="where the temporary work dir goes (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (db, logs)")
    parser.add_argument("--json-out", help=f"JSON results file (default {RESULTS_FILE})")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="sample the broker process with py-spy (all threads) during phase (b) and its "
        "deliveries; raw stacks go to this file and a summary is printed",
    )
    parser.add_argument(
        "--profile-broker", type=Path, help="cProfile the broker process (main thread) to this file"
    )
    # Server side (used by the benchmark itself to start its servers).
    parser.add_argument(
        "--serve", choices=("baseline", "broker", "simulator"), help=argparse.SUPPRESS
    )
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--log-file", help=argparse.SUPPRESS)
    parser.add_argument("--platform-url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--switch-interval", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            return serve_main(args)
        return 0
    if args.profile_broker is not None:
        args.profile_broker = args.profile_broker.resolve()
    if args.py_spy is not None:
        args.py_spy = args.py_spy.resolve()
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
