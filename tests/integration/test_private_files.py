"""The database, its WAL and shared-memory files and `broker backup` copies are readable by the
broker's user only (0600), whatever the umask; a database left 0644 by an older broker is
tightened the next time it is opened."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.store.opening import sqlite_store
from tests.support.cli import run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (0022), under which SQLite alone would create 0644 files."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_fresh_database_and_its_wal_and_shm_are_0600(tmp_path: Path):
    path = tmp_path / "broker.db"
    store = sqlite_store(path)
    await store.open()
    try:
        await store.write(lambda db: db.execute("CREATE TABLE probe (x INTEGER)"))
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")  # stat() fails if missing
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            "broker.db": 0o600,
            "broker.db-wal": 0o600,
            "broker.db-shm": 0o600,
        }
    finally:
        await store.close()


async def test_an_existing_world_readable_database_is_tightened_on_open(tmp_path: Path):
    path = tmp_path / "broker.db"
    with sqlite3.connect(path) as old:  # as an older broker left it: 0644, with a WAL
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE probe (x INTEGER)")
    path.chmod(0o644)
    assert mode(path) == 0o644
    store = sqlite_store(path)
    await store.open()
    try:
        assert mode(path) == 0o600
        assert mode(Path(f"{path}-wal")) == 0o600
    finally:
        await store.close()


async def test_a_broker_backup_copy_is_0600(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "broker.db"
    store = sqlite_store(path)
    await store.open()
    try:
        copy = tmp_path / "copies" / "broker-copy.db"
        code, _, err = run_cli(capsys, "backup", str(copy), "--db", str(path))
        assert code == 0, err
        assert mode(copy) == 0o600
        with sqlite3.connect(copy) as opened:  # a real copy, not an empty file
            names = {row[0] for row in opened.execute("SELECT name FROM sqlite_master")}
        assert "webhook_events" in names
    finally:
        await store.close()


async def test_a_backup_never_overwrites_an_existing_file(tmp_path: Path, capsys):
    path = tmp_path / "broker.db"
    store = sqlite_store(path)
    await store.open()
    await store.close()
    existing = tmp_path / "taken.db"
    existing.write_text("keep me")
    code, _, err = run_cli(capsys, "backup", str(existing), "--db", str(path))
    assert code == 1
    assert "exists; choose a new file name" in err
    assert existing.read_text() == "keep me"
