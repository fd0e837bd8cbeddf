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

    By path only (``os.chmod``), never by opening the file: closing any descriptor of a database
    file drops every POSIX lock this process holds on it, so opening and closing it beside a
    live connection (the store's reader opens while its writer runs) would break SQLite's
    locking; SQLite's own documentation warns against exactly this.

    A file that cannot be changed (a read-only mount, another owner) is left as it is with a
    warning: SQLite then says whether it can use it, and the store answers as it always did.
    """
    with contextlib.suppress(FileExistsError):  # made 0600 here, before anyone opens it
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)):
        # A side file may vanish between the check and the change (SQLite removes it on close).
        with contextlib.suppress(FileNotFoundError):
            _tighten(file)


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600; FileExistsError if anything is there already (O_EXCL
    refuses a symlink too, so a copy never lands where a link points)."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode == PRIVATE_MODE:
        return
    try:
        path.chmod(PRIVATE_MODE)
    except FileNotFoundError:
        raise
    except OSError as exc:
        log.warning(
            "store.file_mode_kept", path=str(path), mode=oct(mode), reason=exc.strerror or ""
        )
