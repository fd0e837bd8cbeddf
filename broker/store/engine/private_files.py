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

PRIVATE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create ``path`` 0600 if missing; tighten it and its side files to 0600 if they exist."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        _tighten(fd)
    finally:
        os.close(fd)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        # The side file may vanish between listing and opening (SQLite removes it on close).
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(side, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                _tighten(fd)
            finally:
                os.close(fd)


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600; FileExistsError if anything is there already."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_MODE))


def _tighten(fd: int) -> None:
    if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_MODE:
        os.fchmod(fd, PRIVATE_MODE)
