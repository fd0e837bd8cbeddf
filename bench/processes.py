"""The benchmark's child processes: start (``python bench/run.py --serve ROLE``), wait until
ready, measure CPU, stop by pid (also on errors and Ctrl-C).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import BENCH_DIR, ROOT

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    role: str
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]
    output: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ready['port']}"


class Processes:
    """Every child this run starts; ``stop_all`` ends each by its own pid, newest first.

    With ``port_base`` each server gets the next of 20 ports from it (servers of this run only
    ever bind 127.0.0.1); 0 lets the kernel choose.
    """

    def __init__(self, workdir: Path, port_base: int = 0) -> None:
        self.workdir = workdir
        self.port_base = port_base
        self.started = 0
        self.children: list[Child] = []

    def start(self, role: str, *extra: str, name: str = "", profile: Path | None = None) -> Child:
        name = name or role
        ready_file = self.workdir / f"{name}.ready"
        ready_file.unlink(missing_ok=True)  # a server of the same name may have run before
        output = self.workdir / f"{name}.out"
        port = self.port_base + self.started % 20 if self.port_base else 0
        self.started += 1
        command = [
            sys.executable,
            str(BENCH_DIR / "run.py"),
            "--serve",
            role,
            "--ready-file",
            str(ready_file),
            "--log-file",
            str(self.workdir / f"{name}.log"),
            "--port",
            str(port),
            *extra,
        ]
        if profile is not None:
            command += ["--cprofile", str(profile)]
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
            )
        child = Child(name, proc, {}, output)
        self.children.append(child)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready_file.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} server exited early:\n{_tail(output)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{role} server not ready in {READY_TIMEOUT_S}s:\n{_tail(output)}"
                )
            time.sleep(0.02)  # waiting for another process to bind its port
        child.ready = json.loads(ready_file.read_text())
        return child

    def stop(self, child: Child) -> None:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads); None means this process."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    total = 0.0
    # The process and any children it started.
    for each in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
