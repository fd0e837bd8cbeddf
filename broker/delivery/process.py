"""Deliveries in a child process, so the web process and the delivery worker use two cores.

``broker serve`` starts ``broker deliver`` as a child and supervises it:

- the child's environment carries no secret value: variables that hold one are written into a
  pipe the child reads once (``secret_env``), and ``_FILE`` variables are left for it to read;
- the parent writes a byte to the child's stdin whenever it commits new work (a wake-up);
  end of stdin tells the child to finish its calls and stop;
- the child writes ``heartbeat`` lines to its stderr while its worker is alive, which is what the
  parent's /readyz reports; anything else it writes there is passed on to the parent's stderr;
- if the child exits, the parent starts another (with backoff); if the parent dies abruptly, the
  kernel kills the child (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` of the service stops both,
  exactly like the single-process broker. Leases make it safe for an old and a new child to
  overlap: a delivery is never claimed by two of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence

import aiohttp
import structlog

from broker.clients.platform import PlatformClient
from broker.config import Settings
from broker.delivery.worker import DeliveryWorker
from broker.metrics import Metrics
from broker.redaction import Redactor
from broker.secret_env import SECRETS_FD_VARIABLE, child_environment, secrets_pipe
from broker.store.database import Store

log = structlog.get_logger(__name__)

HEARTBEAT = b"heartbeat\n"
PR_SET_PDEATHSIG = 1


class DeliveryProcess:
    """The parent's handle on the delivery child: same ``wake``/``alive``/``stop`` as the worker."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        heartbeat_timeout: float,
        secret_values: Sequence[str] = (),
    ) -> None:
        self._command = list(command)
        # Variables holding one of these travel through a pipe, not the child's environment.
        self._secret_values = list(secret_values)
        self._heartbeat_timeout = heartbeat_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_heartbeat = 0.0
        self.restarts = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="delivery-process")

    @property
    def alive(self) -> bool:
        process = self._process
        fresh = time.monotonic() - self._last_heartbeat < self._heartbeat_timeout
        return process is not None and process.returncode is None and fresh

    def wake(self) -> None:
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(b"w")

    def begin_stop(self) -> None:
        """End the child's stdin: it claims nothing more and finishes its calls."""
        self._stopping.set()
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()

    async def stop(self, grace_seconds: float) -> None:
        """Stop the child gracefully, then insist if it does not."""
        self.begin_stop()
        process = self._process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), timeout=grace_seconds + 5)
            except TimeoutError:
                log.warning("delivery.process_killed", pid=process.pid)
                process.kill()
                await process.wait()
        if self._task is not None:
            await self._task

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            child = child_environment(os.environ, self._secret_values)
            secrets_fd = secrets_pipe(child.secrets)
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._command,
                    stdin=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={
                        **child.env,
                        "BROKER_PARENT_PID": str(os.getpid()),
                        SECRETS_FD_VARIABLE: str(secrets_fd),
                    },
                    pass_fds=(secrets_fd,),
                )
            finally:
                os.close(secrets_fd)
            self._process = process
            self._last_heartbeat = time.monotonic()
            log.info("delivery.process_started", pid=process.pid)
            assert process.stderr is not None
            await self._read_stderr(process.stderr)
            code = await process.wait()
            if self._stopping.is_set():
                log.info("delivery.process_stopped", pid=process.pid, code=code)
                return
            self.restarts += 1
            log.error("delivery.process_exited", pid=process.pid, code=code, restart_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, 30.0)

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            if line == HEARTBEAT:
                self._last_heartbeat = time.monotonic()
            else:
                sys.stderr.buffer.write(line)
                sys.stderr.buffer.flush()


async def run_delivery_child(settings: Settings) -> None:
    """``broker deliver``: the worker alone, until stdin ends or SIGTERM."""
    _die_with_parent()
    store = Store(
        settings.store.path,
        synchronous=settings.store.synchronous,
        group_commit_max=settings.store.group_commit_max,
    )
    await store.open()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.delivery.concurrency),
        timeout=aiohttp.ClientTimeout(total=settings.platform.request_timeout_seconds),
    )
    client = PlatformClient(session, settings.platform, redactor=Redactor(settings.secrets()))
    worker = DeliveryWorker(store, client, settings, Metrics())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await loop.connect_read_pipe(lambda: _WakeProtocol(worker, stop), sys.stdin)
    worker.start()
    heartbeat = asyncio.create_task(_heartbeats(worker, settings, stop))
    try:
        await stop.wait()
    finally:
        heartbeat.cancel()
        await worker.stop(grace_seconds=settings.platform.request_timeout_seconds + 1)
        await session.close()
        await store.close()


class _WakeProtocol(asyncio.Protocol):
    def __init__(self, worker: DeliveryWorker, stop: asyncio.Event) -> None:
        self._worker = worker
        self._stop = stop

    def data_received(self, data: bytes) -> None:
        self._worker.wake()

    def eof_received(self) -> bool:
        self._stop.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()


async def _heartbeats(worker: DeliveryWorker, settings: Settings, stop: asyncio.Event) -> None:
    interval = min(1.0, settings.delivery.poll_interval_seconds)
    while not stop.is_set():
        if worker.alive:
            sys.stderr.buffer.write(HEARTBEAT)
            sys.stderr.buffer.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def _die_with_parent() -> None:
    """Ask the kernel to kill this child with its parent; exit if the parent is already gone."""
    parent = os.environ.get("BROKER_PARENT_PID")
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and str(os.getppid()) != parent:
        raise SystemExit("the broker process that started this worker is gone")
