"""/readyz under a flood of wrong console sign-ins, all on 127.0.0.1, bounded in count and time.

    python bench/login_flood.py                       # this checkout, default limits
    python bench/login_flood.py --unlimited           # limits lifted: the hashing pool alone
    python bench/login_flood.py --src /path/to/other  # another checkout of the broker (before)

The broker runs in a child process (``--serve``, on an ephemeral port, its own work directory)
with the production scrypt cost. The parent probes /readyz one request at a time for a quiet
phase, then again while ``--concurrency`` clients post wrong passwords as fast as they are
answered, until ``--seconds`` pass or ``--max-logins`` were sent. It prints readyz p50/p99 of both
phases and the sign-in answers by status, as a table and one JSON line. The child is stopped by
its pid (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "the operator's real passphrase"  # noqa: S105 - a bench-only throwaway
UNLIMITED = {
    "login_burst_per_address": 1000,
    "login_per_minute_per_address": 6000.0,
    "login_burst_global": 100_000,
    "login_per_minute_global": 600_000.0,
}


def serve(workdir: Path, ops_overrides: dict[str, Any]) -> None:
    """The child: the broker as `broker serve` builds it, on 127.0.0.1 and a free port."""
    import logging

    import structlog
    from aiohttp import web

    from broker.app import create_app
    from broker.config import Settings
    from broker.core.operator_password import hash_password

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    settings = Settings(
        platform={
            "app_domain": "benchapp",
            "zapikey": "bench-zapikey-0123456789abcdef",
            "base_url": "http://127.0.0.1:9",  # never called: no webhooks in this bench
        },
        store={"path": workdir / "broker.db"},
        landing={"link_secret": "bench-link-secret-0123456789abcdef"},
        ops={
            "password_hash": hash_password(PASSWORD),  # the production cost (2**14, 8, 1)
            "session_secret": "bench-ops-session-secret-0123456789",
            **ops_overrides,
        },
    )

    async def main() -> None:
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # parent closes
        await runner.cleanup()

    asyncio.run(main())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def probe_readyz(
    session: aiohttp.ClientSession, base: str, until: float, timings: list[float]
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    while time.monotonic() < until:
        started = time.perf_counter()
        async with session.get(f"{base}/readyz") as response:
            await response.read()
            statuses[response.status] += 1
        timings.append((time.perf_counter() - started) * 1000)
    return statuses


async def flood(
    session: aiohttp.ClientSession, base: str, until: float, budget: list[int], out: Counter[int]
) -> None:
    while time.monotonic() < until and budget[0] > 0:
        budget[0] -= 1
        async with session.post(
            f"{base}/ops/login", data={"password": "wrong"}, allow_redirects=False
        ) as response:
            await response.read()
            out[response.status] += 1


async def measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        quiet: list[float] = []
        quiet_status = await probe_readyz(
            session, base, time.monotonic() + args.quiet_seconds, quiet
        )
        busy: list[float] = []
        logins: Counter[int] = Counter()
        budget = [args.max_logins]
        until = time.monotonic() + args.seconds
        started = time.monotonic()
        flooders = [
            asyncio.ensure_future(flood(session, base, until, budget, logins))
            for _ in range(args.concurrency)
        ]
        busy_status = await probe_readyz(session, base, until, busy)
        await asyncio.gather(*flooders)
        elapsed = time.monotonic() - started
    return {
        "readyz_quiet_ms": {
            "p50": percentile(quiet, 0.5),
            "p99": percentile(quiet, 0.99),
            "n": len(quiet),
            "statuses": dict(quiet_status),
        },
        "readyz_flood_ms": {
            "p50": percentile(busy, 0.5),
            "p99": percentile(busy, 0.99),
            "max": max(busy, default=float("nan")),
            "n": len(busy),
            "statuses": dict(busy_status),
        },
        "logins": {
            "sent": sum(logins.values()),
            "per_second": sum(logins.values()) / elapsed,
            "statuses": dict(logins),
        },
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "mean_quiet_ms": statistics.fmean(quiet) if quiet else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--src", type=Path, default=ROOT, help="the broker checkout to run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="the flood's length (max 60)")
    parser.add_argument("--quiet-seconds", type=float, default=2.0)
    parser.add_argument("--max-logins", type=int, default=20_000, help="at most this many sent")
    parser.add_argument("--unlimited", action="store_true", help="lift the sign-in limits")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ops-json", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, json.loads(args.ops_json))
        return 0
    args.seconds = min(args.seconds, 60.0)
    with tempfile.TemporaryDirectory(prefix="login-flood-") as workdir:
        env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            workdir,
            "--ops-json",
            json.dumps(UNLIMITED if args.unlimited else {}),
        ]
        child = subprocess.Popen(
            command, env=env, cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                print("the broker did not start", file=sys.stderr)
                return 1
            base = f"http://127.0.0.1:{json.loads(line)['port']}"
            result = asyncio.run(measure(base, args))
        finally:
            if child.stdin is not None:
                child.stdin.close()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    result["src"] = str(args.src)
    result["unlimited"] = args.unlimited
    quiet, busy = result["readyz_quiet_ms"], result["readyz_flood_ms"]
    print(f"source            {args.src}{' (limits lifted)' if args.unlimited else ''}")
    print(f"readyz quiet      p50 {quiet['p50']:8.1f} ms   p99 {quiet['p99']:8.1f} ms", end="")
    print(f"   n={quiet['n']}")
    print(
        f"readyz in flood   p50 {busy['p50']:8.1f} ms   p99 {busy['p99']:8.1f} ms   n={busy['n']}"
        f"   max {busy['max']:.1f} ms"
    )
    logins = result["logins"]
    print(f"sign-ins          {logins['sent']} sent, {logins['per_second']:.0f}/s", end="")
    print(f", statuses {logins['statuses']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
