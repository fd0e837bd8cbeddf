"""What a run found: machine facts, py-spy and database summaries, the printed table and the
JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from bench.load import BrokerRun, LoadResult


TARGET_RATIO = 0.15
TARGET_P99_MS = 30.0
TARGET_E2E_PER_S = 1500.0


async def start_py_spy(pid: int, output: Path) -> asyncio.subprocess.Process:
    """Sample every thread of the broker process while the measured phase and its deliveries run."""
    executable = shutil.which("py-spy")
    if executable is None:
        raise RuntimeError("--py-spy needs py-spy on PATH (pip install py-spy)")
    process = await asyncio.create_subprocess_exec(
        executable,
        "record",
        "--pid",
        str(pid),
        "--threads",
        "--gil",  # only the thread holding the GIL: where CPU goes, not who waits
        "--nonblocking",
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # give py-spy time to attach before the measured requests start
    return process


def summarize_profile(path: Path, top: int = 14) -> dict[str, Any]:
    """Where the broker process's CPU went: py-spy samples of the thread holding the GIL.

    By thread; by broker function, inclusive (share of samples with it anywhere on the stack);
    by innermost broker function (the broker code that called the library doing the work); by
    the package of the leaf frame (the code that was actually running).
    """
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        thread_frame, *frames = stack.split(";")
        thread = thread_frame.rpartition(":")[2].strip() or thread_frame
        functions = [_function_of(frame) for frame in frames]
        ours = [name for name in functions if name.startswith("broker/")]
        total += samples
        threads[thread] += samples
        for name in set(ours):
            inclusive[f"[{thread}] {name}"] += samples
        innermost[f"[{thread}] {ours[-1] if ours else '(no broker frame)'}"] += samples
        packages[functions[-1].split(" ", 1)[0].split("/", 1)[0] if functions else "?"] += samples

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "threads": shares(threads),
        "broker_inclusive": shares(inclusive),
        "innermost_broker_function": shares(innermost),
        "leaf_package": shares(packages),
    }


def _function_of(frame: str) -> str:
    """'f (broker/store/pipeline.py:117)' -> 'broker/store/pipeline.py f'."""
    name, _, where = frame.rpartition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{file} {name}"


def database_summary(db_path: Path) -> dict[str, Any]:
    """What the broker's own database says after it stopped (read-only)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        deliveries = dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))
        events = dict(conn.execute("SELECT outcome, COUNT(*) FROM webhook_events GROUP BY outcome"))
        attempts = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return {
        "deliveries": deliveries,
        "webhook_events": events,
        "attempts": attempts,
        "journal_mode": journal,
        "reader_synchronous_default": synchronous,
    }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def machine_info(workdir: Path) -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(load1, 2), round(load5, 2)],
        "data_dir": str(workdir),
        "data_fs": _filesystem_of(workdir),
    }


def _filesystem_of(path: Path) -> str:
    """The mount's filesystem type: tmpfs would make fsync free and the figures dishonest."""
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def verdict(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def report(
    args: argparse.Namespace,
    info: dict[str, Any],
    baseline: LoadResult,
    run: BrokerRun,
    counts: dict[str, int],
) -> dict[str, Any]:
    a, b = baseline.summary(), run.ingest.summary()
    ratio = run.ingest.rate / baseline.rate
    e2e = run.end_to_end
    once = run.exactly_once
    checks = {
        "ratio": ratio >= TARGET_RATIO,
        "p99": b["p99_ms"] < TARGET_P99_MS,
        "end_to_end": e2e["events_per_s"] >= TARGET_E2E_PER_S and not e2e["timed_out"],
        "exactly_once": once["ok"] and not e2e["timed_out"],
        "no_errors": not b["errors"] and set(b["statuses"]) == {"200"},
    }
    width = 78
    lines = [
        "=" * width,
        f"broker benchmark  ({'quick' if args.quick else 'full'}: {counts['requests']:,} measured"
        f" requests per phase, {counts['warmup']:,} warm-up, {args.concurrency} connections)",
        f"python {info['python']}, aiohttp {info['aiohttp']}, {info['cpus']} CPUs, "
        f"load average before {info['loadavg_before'][0]} / {info['loadavg_before'][1]}",
        f"database: {info['data_dir']} ({info['data_fs']}), synchronous="
        f"{run.broker_stats['settings']['synchronous']}, group_commit_max="
        f"{run.broker_stats['settings']['group_commit_max']}; broker log level "
        f"{args.broker_log_level} (JSON lines to a file); deliveries in the web process",
        f"simulator: {run.placement}; load generator: this process, aiohttp client",
        "-" * width,
        f"{'phase':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  cpu %",
    ]

    def row(name: str, s: dict[str, Any]) -> str:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_percent"].items())
        return (
            f"{name:<34}{s['req_per_s']:>9,.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
            f"{s['max_ms']:>9.1f}  {cpu}"
        )

    lines += [
        row("(a) bare aiohttp handler", a),
        row("(b) broker ingest (durable ack)", b),
        "-" * width,
        f"(b)/(a) throughput ratio          {ratio:>9.3f}   target >= {TARGET_RATIO}"
        f"   {verdict(checks['ratio'])}",
        f"(b) p99 ack latency               {b['p99_ms']:>9.2f}   target < {TARGET_P99_MS:.0f} ms"
        f"   {verdict(checks['p99'])}",
        f"(c) end-to-end events/s           {e2e['events_per_s']:>9,.0f}   target >= "
        f"{TARGET_E2E_PER_S:,.0f}   {verdict(checks['end_to_end'])}",
        f"    {e2e['applied']:,} of {e2e['events']:,} acknowledged events applied in "
        f"{e2e['seconds']:.2f} s; last Add {e2e['delivery_lag_after_last_ack_s']:.2f} s "
        "after the last ack",
        f"exactly once: {once['applied_calls']:,} applied calls for {once['acknowledged']:,} "
        f"acknowledged events (incl. warm-up); missing {once['missing']}, doubled "
        f"{once['doubled']}, not acknowledged {once['applied_but_not_acknowledged']}, "
        f"calls refused {once['calls_not_applied']}   {verdict(checks['exactly_once'])}",
        "by quarter of the run: (b) req/s "
        + " / ".join(f"{rate:,.0f}" for rate in b["req_per_s_by_quarter"])
        + "; (c) Adds applied/s "
        + " / ".join(f"{rate:,.0f}" for rate in e2e["applied_per_s_by_quarter"]),
        f"broker answers: {run.outcomes}; HTTP {b['statuses']}"
        + (f"; client errors {b['errors']}" if b["errors"] else ""),
        f"group commit: {run.broker_stats['store']['jobs']:,} write jobs in "
        f"{run.broker_stats['store']['transactions']:,} transactions (largest "
        f"{run.broker_stats['store']['largest_group']}); deliveries {run.database['deliveries']}",
        "=" * width,
    ]
    if run.profile is not None:
        lines.append(
            f"py-spy --gil, broker process, {run.profile['samples']:,} samples of the thread "
            f"holding the GIL (raw: {args.py_spy})"
        )
        for title, key in (
            ("thread", "threads"),
            ("broker function, inclusive", "broker_inclusive"),
            ("innermost broker function", "innermost_broker_function"),
            ("package of the running code", "leaf_package"),
        ):
            lines.append(f"  by {title}:")
            lines += [f"    {share:5.1f}%  {name}" for name, share in run.profile[key]]
        lines.append("=" * width)
    print("\n".join(lines))
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "concurrency": args.concurrency,
        "warmup": counts["warmup"],
        "simulator": run.placement,
        "broker_log_level": args.broker_log_level,
        "baseline": a,
        "ingest": b,
        "ratio": round(ratio, 4),
        "end_to_end": e2e,
        "exactly_once": once,
        "broker_outcomes": run.outcomes,
        "broker_stats": run.broker_stats,
        "database": run.database,
        "targets": {
            "ratio_min": TARGET_RATIO,
            "p99_ms_max": TARGET_P99_MS,
            "end_to_end_per_s_min": TARGET_E2E_PER_S,
        },
        "checks": checks,
        "profile": run.profile,
        "broker_env_overrides": sorted(k for k in os.environ if k.upper().startswith("BROKER_")),
    }
