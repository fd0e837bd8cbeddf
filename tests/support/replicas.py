"""Several real ``broker serve`` processes on one PostgreSQL database, and a platform simulator
(in the test process) that watches what arrives on the wire from all of them at once.

Used by ``test_replicas.py``. Each replica is a child process with its own port and the same
``BROKER_STORE__URL``; killing one is a real SIGKILL. The watch middleware records, per org, how
many calls are inside the simulator at the same moment: the broker promises at most one per
subscription across every replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from psycopg.rows import dict_row

from broker.simulators.platform import PlatformSimulator
from tests.support.basics import APP_DOMAIN, STORAGE_MONTHLY, ZAPIKEY, body_of, eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
START_WITHIN = 30.0  # seconds for three replicas on two cores to answer /readyz 200
LEASE_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 1.0  # below the lease, as the settings require
LOG_TAIL_CHARS = 4000


@dataclass
class Wire:
    """Calls inside the simulator now, per org, and the most one org ever had at once."""

    started: int = 0
    finished: int = 0
    inside: Counter[str] = field(default_factory=Counter)
    most_at_once: int = 0

    @property
    def in_flight(self) -> int:
        return self.started - self.finished


def watched_app(simulator: PlatformSimulator, wire: Wire) -> web.Application:
    """The simulator's app, with a middleware that counts calls per org while it holds them."""

    @web.middleware
    async def watch(request: web.Request, handler: Handler) -> web.StreamResponse:
        org = request.match_info.get("zgid", "")
        wire.started += 1
        wire.inside[org] += 1
        wire.most_at_once = max(wire.most_at_once, wire.inside[org])
        try:
            return await handler(request)
        finally:
            wire.inside[org] -= 1
            wire.finished += 1

    app = simulator.app()
    app.middlewares.append(watch)
    return app


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:] or "(empty)"
    except FileNotFoundError:
        return "(none)"


@dataclass
class Replica:
    """One ``python -m broker serve`` child process."""

    name: str
    proc: asyncio.subprocess.Process
    url: str
    log: Path

    def logs(self) -> str:
        return f"--- {self.name} {self.url} exit={self.proc.returncode} ---\n{_tail(self.log)}"

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, its leases stay taken until they run out."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        async def ready() -> bool:
            if self.proc.returncode is not None:
                raise AssertionError(f"replica exited before it was ready\n{self.logs()}")
            try:
                async with session.get(f"{self.url}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, within=START_WITHIN, interval=0.05, message=f"{self.name} ready")


ReplicaStarter = Callable[..., Awaitable[list[Replica]]]


def replica_env(store_url: str, platform_url: str, port: int, **extra: str) -> dict[str, str]:
    """A replica's environment: the parent's without BROKER_ settings, plus these."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BROKER_")}
    env.update(
        {
            "BROKER_PLATFORM__APP_DOMAIN": APP_DOMAIN,
            "BROKER_PLATFORM__ZAPIKEY": ZAPIKEY,
            "BROKER_PLATFORM__BASE_URL": platform_url,
            "BROKER_STORE__URL": store_url,
            "BROKER_STORE__POOL_SIZE": "4",
            "BROKER_SERVER__HOST": "127.0.0.1",
            "BROKER_SERVER__PORT": str(port),
            "BROKER_PLANS__STORAGE_ADDON_MONTHLY": STORAGE_MONTHLY,
            "BROKER_PLATFORM__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
            "BROKER_DELIVERY__LEASE_SECONDS": str(LEASE_SECONDS),
            "BROKER_DELIVERY__INITIAL_BACKOFF_SECONDS": "0.05",
            "BROKER_DELIVERY__MAX_BACKOFF_SECONDS": "0.2",
            "BROKER_DELIVERY__JITTER_SECONDS": "0",
            "BROKER_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
            "BROKER_LOG__FORMAT": "json",
            "BROKER_LOG__LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def free_ports(count: int, taken: set[int]) -> list[int]:
    """Ports in the range this machine gives us (19500-19599), not in use now nor ``taken``."""
    found: list[int] = []
    for port in sorted(set(range(19500, 19600)) - taken):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise AssertionError(f"fewer than {count} free ports in 19500-19599")


@pytest.fixture
async def start_replicas(
    tmp_path: Path, postgres_url: str, platform_server: TestServer
) -> AsyncIterator[ReplicaStarter]:
    """Start ``count`` replicas on the test's database; every one is killed at teardown."""
    started: list[Replica] = []
    taken: set[int] = set()  # handed out already: a replica may not have bound its port yet
    platform_url = str(platform_server.make_url("")).rstrip("/")

    async def start(count: int = 3, **extra: str) -> list[Replica]:
        replicas = []
        ports = free_ports(count, taken)
        taken.update(ports)
        for port in ports:
            name = f"replica-{len(started) + 1}"
            log = tmp_path / f"{name}.log"
            with log.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "broker", "serve",
                    env=replica_env(postgres_url, platform_url, port, **extra),
                    cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
            replica = Replica(name, proc, f"http://127.0.0.1:{port}", log)
            started.append(replica)
            replicas.append(replica)
        return replicas

    try:
        yield start
    finally:
        for replica in started:
            await replica.kill()


async def post_webhook(
    session: aiohttp.ClientSession, replica: Replica, event: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "zapikey": ZAPIKEY}
    url = f"{replica.url}/webhooks/billing"
    async with session.post(url, data=body_of(event), headers=headers) as response:
        return response.status, await response.json()


async def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Read the shared database as an operator would while the replicas run."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(sql, params)
        return await cursor.fetchall()


async def unfinished(url: str) -> int:
    """Deliveries not yet done (pending or in flight): zero means the replicas are through."""
    found = await rows(
        url, "SELECT COUNT(*) AS n FROM deliveries WHERE state IN ('pending', 'in_flight')"
    )
    return int(found[0]["n"])
