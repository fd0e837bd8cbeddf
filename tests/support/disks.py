"""Real disk faults for the tests that need them: a small tmpfs of our own, mounted and unmounted
around the test, and a disk filled to the last block.

Mounting needs root (CI runs as root); elsewhere the test asking for a disk is skipped with a
note, and under CI (the CI variable set) it fails instead, so a CI that lost its privileges cannot
pass quietly."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


def need_mounts() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("disk-fault tests need root to mount a tmpfs; CI runs as root")
    pytest.skip("needs root to mount a small tmpfs (CI runs these as root)")


@contextlib.contextmanager
def mounted_small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs of our own, unmounted on leaving."""
    need_mounts()
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk))
    try:
        yield disk
    finally:
        umount(disk)


def _write_forever(fd: int) -> None:
    while True:
        os.write(fd, b"\0" * 65536)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another block."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left") as refused:
            _write_forever(fd)
    finally:
        os.close(fd)
    assert refused.value.errno == errno.ENOSPC
    return filler
