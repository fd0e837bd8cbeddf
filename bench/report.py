"""What a run found: machine facts, py-spy and database summaries, the printed table and the
JSON document.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from bench.load import BackendRun, Phase

# The targets on the 2-core machine (wrk, same run).
TARGET_RATIO_C50 = 0.15
TARGET_P99_MS_C10 = 20.0
TARGET_E2E_PER_S = 1500.0


def start_py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample the broker's thread holding the GIL (where CPU goes) during the c50 ingest."""
    # The bench extra installs py-spy beside this interpreter, which need not be on PATH.
    executable = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}")
    executable = executable or shutil.which("py-spy")
    if executable is None:
        raise RuntimeError("--profile needs py-spy on PATH: pip install -e '.[bench]'")
    command = [executable, "record", "--pid", str(pid), "--threads", "--gil", "--nonblocking"]
    command += ["--rate", "100", "--format", "raw", "--output", str(output)]
    with output.with_suffix(".log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    time.sleep(0.5)  # py-spy attaches before the measured requests start
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


def _row(label: str, replicas: str, conns: int, phase: Phase, ratio: str, extra: str = "") -> str:
    r = phase.result
    return (
        f"{label:<18}{replicas:>4}{conns:>6}{r.req_per_s:>10,.0f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
        f"{ratio:>7}{extra}"
    )


def report(
    args: argparse.Namespace,
    info: dict[str, Any],
    baseline: dict[str, Phase],
    runs: list[BackendRun],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """Print the table (loudly on any failed request or lost/repeated event); return the JSON."""
    width = 100
    lines = [
        "=" * width,
        f"broker benchmark ({'quick' if args.quick else 'full'}): wrk, {seconds['phase']:.0f} s "
        f"per phase after {seconds['warmup']:.0f} s warm-up; python {info['python']}, aiohttp "
        f"{info['aiohttp']}, {info['cpus']} CPUs, load average before "
        f"{info['loadavg_before'][0]}; data in {info['data_dir']} ({info['data_fs']})",
        "-" * width,
        f"{'backend':<18}{'repl':>4}{'conns':>6}{'req/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'ratio':>7}  end to end ev/s; exactly once (delivered / accepted, repeated)",
    ]
    for phase_name, conns in (("c50", 50), ("c10", 10)):
        lines.append(_row("bare aiohttp", "-", conns, baseline[phase_name], "1.000"))
    failures: list[str] = [
        f"bare c{p[1:]}: {baseline[p].result.failures} failed requests"
        for p in baseline
        if baseline[p].result.failures
    ]
    checks: dict[str, dict[str, bool]] = {}
    documents = []
    for run in runs:
        once, e2e = run.exactly_once, run.end_to_end
        ratios = {
            p: run.phases[p].result.req_per_s / baseline[p].result.req_per_s for p in run.phases
        }
        for phase_name, conns in (("c50", 50), ("c10", 10)):
            extra = ""
            if phase_name == "c50":
                extra = (
                    f"  {e2e['events_per_s']:>8,.0f}; {once['delivered']:,} / "
                    f"{once['accepted']:,}, {once['repeated']} repeated"
                )
            lines.append(
                _row(
                    run.store,
                    str(run.replicas),
                    conns,
                    run.phases[phase_name],
                    f"{ratios[phase_name]:.3f}",
                    extra,
                )
            )
            bad = run.phases[phase_name].result.failures
            if bad:
                failures.append(f"{run.name} c{conns}: {bad} requests not answered 200")
        if not once["ok"]:
            failures.append(f"{run.name}: exactly once broken: {once}")
        checks[run.name] = {
            "ratio_c50": ratios["c50"] >= TARGET_RATIO_C50,
            "p99_c10": run.phases["c10"].result.p99_ms < TARGET_P99_MS_C10,
            "end_to_end": e2e["events_per_s"] >= TARGET_E2E_PER_S,
            "exactly_once": once["ok"],
        }
        documents.append(
            {
                "name": run.name,
                "store": run.store,
                "replicas": run.replicas,
                "phases": {p: phase.summary() for p, phase in run.phases.items()},
                "ratios": {p: round(v, 4) for p, v in ratios.items()},
                "end_to_end": e2e,
                "exactly_once": once,
                "database": run.database,
                "checks": checks[run.name],
            }
        )
    lines.append("-" * width)
    lines.append(
        f"targets: ratio at 50 connections >= {TARGET_RATIO_C50}, p99 at 10 connections < "
        f"{TARGET_P99_MS_C10:.0f} ms, end to end >= {TARGET_E2E_PER_S:,.0f} events/s"
    )
    for name, found in checks.items():
        lines.append(f"  {name:<16} " + "  ".join(f"{k} {verdict(v)}" for k, v in found.items()))
    lines.append("cpu % of one core (c50): ")
    lines[-1] += "; ".join(
        f"{label} " + ", ".join(f"{k} {v:.0f}" for k, v in phase.cpu.items())
        for label, phase in [("bare", baseline["c50"])]
        + [(run.name, run.phases["c50"]) for run in runs]
    )
    for run in runs:
        if run.profile is not None:
            lines += profile_lines(run.profile, top=args.profile_top)
    lines.append("=" * width)
    if failures:
        lines += ["!" * width, "FAILED: " + "\nFAILED: ".join(failures), "!" * width]
    print("\n".join(lines), flush=True)
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "quick" if args.quick else "full",
        "seconds": seconds,
        "machine": info,
        "broker_log_level": args.broker_log_level,
        "baseline": {p: phase.summary() for p, phase in baseline.items()},
        "backends": documents,
        "failures": failures,
        "profile": [run.profile for run in runs if run.profile is not None],
        "broker_env_overrides": sorted(k for k in os.environ if k.upper().startswith("BROKER_")),
    }


def profile_lines(profile: dict[str, Any], top: int) -> list[str]:
    """The top items of a py-spy summary, as printed and as kept in the profile file."""
    lines = [f"py-spy --gil, broker process, c50 ingest: {profile['samples']:,} samples"]
    for title, key in (
        ("thread", "threads"),
        ("broker function, inclusive", "broker_inclusive"),
        ("innermost broker function", "innermost_broker_function"),
        ("package of the running code", "leaf_package"),
    ):
        lines.append(f"  by {title}:")
        lines += [f"    {share:5.1f}%  {name}" for name, share in profile[key][:top]]
    return lines
