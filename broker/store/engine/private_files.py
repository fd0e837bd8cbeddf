"""The database and its copies are readable by the broker's user only (mode 0600).

They hold customers' names and emails, the raw webhook bodies and the audit log: nothing another
local user should read. SQLite creates a new file with the process umask (usually 0644) and gives
its ``-wal`` and ``-shm`` files the database file's mode, so the database file is created 0600
before SQLite opens it, and an existing one (with its ``-wal``/``-shm``) is tightened at each
connect: a database made by an older broker is fixed the next time it is opened.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)
PRIVATE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create ``path`` 0600 if missing; tighten it and its side files to 0600 if they exist.

    A file that cannot be changed (a read-only mount, another owner) is left as it is with a
    warning: SQLite then says whether it can use it, and the store answers as it always did.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        _tighten(fd, path)
    finally:
        os.close(fd)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        # The side file may vanish between listing and opening (SQLite removes it on close).
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(side, os.O_RDONLY)
            try:
                _tighten(fd, side)
            finally:
                os.close(fd)


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600; FileExistsError if anything is there already (O_EXCL
    refuses a symlink too, so a copy never lands where a link points)."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))


def _tighten(fd: int, path: Path) -> None:
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode == PRIVATE_MODE:
        return
    try:
        os.fchmod(fd, PRIVATE_MODE)
    except OSError as exc:
        log.warning(
            "store.file_mode_kept", path=str(path), mode=oct(mode), reason=exc.strerror or ""
        )
