"""Throughput and latency of the broker's webhook ingest and delivery, in one command, with wrk.

    python bench/run.py                                   # SQLite, full (about 1.5 minutes)
    python bench/run.py --quick                           # CI-size smoke (about 30 seconds)
    python bench/run.py --store sqlite --store postgresql://u:p@127.0.0.1:5433/db --replicas 1,2

In one run: the bare aiohttp handler (the baseline) at 50 and 10 connections; then per backend
(each ``--store``, and on PostgreSQL each ``--replicas`` count sharing the database) the
broker's ingest at 50 and 10 connections (req/s, p50/p99, ratio to bare), end to end (first
webhook of the c50 phase to the simulator having applied every Add) and the exactly-once count
(N accepted events -> N applied calls, none repeated). Load comes from wrk with a Lua script that
makes every request a distinct valid webhook; with replicas, one wrk per replica splits the
connections and the rates add up.

Each server runs in its own process (``python bench/run.py --serve ROLE``). The load run is never
part of pytest; its pieces (Lua, parser, report) are tested in tests/system/test_bench_wrk.py.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` as a package

from bench.load import Driver, run_backend, run_baseline
from bench.processes import Processes
from bench.report import machine_info, profile_lines, report
from bench.servers import RESULTS_FILE, serve_main
from bench.wrk import ensure_wrk
from broker.store.engine.pg_admin import shown_url

FULL = {"warmup": 3.0, "phase": 10.0}
QUICK = {"warmup": 1.0, "phase": 3.0}
PROFILE_FILE = Path(__file__).resolve().parent / "profile-latest.txt"


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def bench_main(args: argparse.Namespace) -> int:
    seconds = dict(QUICK if args.quick else FULL)
    if args.seconds:
        seconds["phase"] = args.seconds
    backends = plan(args.store or ["sqlite"], args.replicas)
    base = Path(args.data_dir) if args.data_dir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="broker-bench-", dir=base))
    procs = Processes(workdir, args.port_base)
    info = machine_info(workdir)
    # `kill` (SIGTERM) of the benchmark must stop its servers too: unwind through `finally`.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    overrides = sorted(k for k in os.environ if k.upper().startswith("BROKER_"))
    if overrides:
        print(f"note: broker settings from the environment apply: {', '.join(overrides)}")
    names = ", ".join(f"{shown_url(store)} x{n}" for store, n in backends)
    print(f"running: bare handler, then {names}; work dir {workdir}", flush=True)
    try:
        driver = Driver(ensure_wrk(), workdir, args.wrk_threads)
        baseline = run_baseline(args, procs, driver, seconds)
        print(f"  bare: {baseline['c50'].result.req_per_s:,.0f} req/s at c50", flush=True)
        runs = []
        for store, replicas in backends:
            runs.append(run_backend(args, procs, driver, seconds, store=store, replicas=replicas))
            print(f"  {runs[-1].name}: {runs[-1].phases['c50'].result.req_per_s:,.0f} req/s")
        summary = report(args, info, baseline, runs, seconds)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError) as exc:
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
    for profile in summary["profile"]:
        PROFILE_FILE.write_text("\n".join(profile_lines(profile, args.profile_top)) + "\n")
        print(f"profile summary in {PROFILE_FILE}")
    return 1 if summary["failures"] else 0


def plan(stores: list[str], replicas: str) -> list[tuple[str, int]]:
    """(store, replica count) per backend run: SQLite is one process; PostgreSQL each count."""
    counts = [int(n) for n in replicas.split(",") if n.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"--replicas wants counts like 1,2, not {replicas!r}")
    runs: list[tuple[str, int]] = []
    for store in stores:
        if store == "sqlite":
            runs.append((store, 1))  # one writer per SQLite file: replicas need PostgreSQL
        elif store.startswith(("postgresql://", "postgres://")):
            runs += [(store, n) for n in counts]
        else:
            raise SystemExit(f"--store wants sqlite or postgresql://..., not {shown_url(store)}")
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s phases instead of 10 s")
    parser.add_argument("--seconds", type=float, default=0, help="seconds per measured phase")
    parser.add_argument(
        "--store",
        action="append",
        help="sqlite (default) or postgresql://...; repeat for several backends in one run",
    )
    parser.add_argument(
        "--replicas", default="1,2", help="broker processes on PostgreSQL, e.g. 1,2 (default)"
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="threads per wrk (default 1)")
    parser.add_argument(
        "--port-base", type=int, default=0, help="servers bind 127.0.0.1 ports from here (0: any)"
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
        "--profile",
        action="store_true",
        help=f"py-spy the first broker during the c50 ingest; top items to {PROFILE_FILE}",
    )
    parser.add_argument("--profile-top", type=int, default=12, help="items per profile list")
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
    parser.add_argument("--cprofile", help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            return serve_main(args)
        return 0
    if args.profile_broker is not None:
        args.profile_broker = args.profile_broker.resolve()
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
