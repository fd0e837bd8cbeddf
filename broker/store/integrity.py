"""``PRAGMA integrity_check`` through Python's sqlite3, so a host or image without the
``sqlite3`` binary can still prove a database or a backup sound (``broker check-db``,
``broker backup --verify``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

MAX_PROBLEMS = 20  # SQLite stops at 100 by default; the first few say enough


def integrity_problems(path: Path) -> list[str]:
    """What SQLite finds wrong with the database at ``path``; empty when it is sound.

    Opened read-only, so checking a live database never writes to it; a file that is not a
    database at all is one problem, not an exception.
    """
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open it ({exc})"]
    try:
        rows = connection.execute(f"PRAGMA integrity_check({MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        return [f"not a sound SQLite database ({exc})"]
    finally:
        connection.close()
    # SQLite may pack several findings into one row, a line each.
    messages = [line for row in rows for line in str(row[0]).splitlines() if line.strip()]
    return [] if messages == ["ok"] else messages
