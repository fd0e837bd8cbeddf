"""``broker check-db`` and ``broker backup --verify``: SQLite's integrity check run through Python,
so the container image (which has no ``sqlite3`` binary) can prove a database and its backups
sound, and a damaged file makes the command fail, naming what SQLite found."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from broker.cli import main
from broker.simulators.platform import PlatformSimulator
from tests.conftest import post_event
from tests.support.basics import subscription_event


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BROKER_") or name == "PORT":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def live_database(
    make_broker: Any, simulator: PlatformSimulator, tmp_path: Path, capsys: Any
) -> Path:
    """The broker's own database, open and in use, after one event was received and sent (its
    log lines are left out of what the command prints)."""
    client = await make_broker()
    assert (await post_event(client, subscription_event(event_id="check-db-1"))).status == 200
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    capsys.readouterr()
    return tmp_path / "broker.db"


def damaged_database(path: Path) -> Path:
    """A database whose index page was overwritten: it opens, but the check finds the damage."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (a TEXT)")
        connection.execute("CREATE INDEX t_a ON t (a)")
        connection.executemany("INSERT INTO t VALUES (?)", [(f"row {n}" * 5,) for n in range(999)])
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 't_a'")
        page = root.fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    data = bytearray(path.read_bytes())
    start = (page - 1) * size
    data[start + 8 : start + size] = bytes(size - 8)  # keep the header, lose every cell
    path.write_bytes(bytes(data))
    return path


async def test_check_db_passes_on_the_live_database(make_broker, simulator, tmp_path, capsys):
    db = await live_database(make_broker, simulator, tmp_path, capsys)
    code, out, err = run(capsys, "check-db", "--db", str(db))
    assert code == 0, err
    assert out == f"integrity check of {db}: ok\n"


async def test_check_db_finds_the_database_from_settings(
    make_broker, simulator, tmp_path, capsys, monkeypatch
):
    db = await live_database(make_broker, simulator, tmp_path, capsys)
    monkeypatch.setenv("BROKER_STORE__PATH", str(db))
    code, out, _ = run(capsys, "check-db")
    assert (code, out) == (0, f"integrity check of {db}: ok\n")


def test_check_db_fails_on_a_damaged_database(capsys, tmp_path: Path):
    db = damaged_database(tmp_path / "damaged.db")
    code, out, err = run(capsys, "check-db", "--db", str(db))
    assert code == 1
    assert out == ""
    assert err.startswith(f"integrity check of {db} FAILED:\n")
    assert "On tree page" in err  # SQLite's own words, so the operator can look them up


def test_check_db_fails_on_a_file_that_is_not_a_database(capsys, tmp_path: Path):
    db = tmp_path / "notes.db"
    db.write_text("not a database at all\n" * 50)
    code, _, err = run(capsys, "check-db", "--db", str(db))
    assert code == 1
    assert "not a sound SQLite database (file is not a database)" in err


def test_check_db_without_a_database_says_where_it_looked(capsys, tmp_path: Path):
    code, _, err = run(capsys, "check-db", "--db", str(tmp_path / "none.db"))
    assert code == 1
    assert f"no database at {tmp_path / 'none.db'}" in err
    assert not (tmp_path / "none.db").exists()  # looking does not create it


async def test_backup_verify_checks_the_copy(make_broker, simulator, tmp_path, capsys):
    db = await live_database(make_broker, simulator, tmp_path, capsys)
    copy = tmp_path / "backups" / "copy.db"
    code, out, err = run(capsys, "backup", str(copy), "--db", str(db), "--verify")
    assert code == 0, err
    assert out.splitlines() == [
        f"backed up {db} to {copy}",
        "marked as a backup of generation 1: a broker started on it supersedes its pending "
        "deliveries and reconciles with billing before sending",
        f"integrity check of {copy}: ok",
    ]
    with sqlite3.connect(copy) as connection:
        events = connection.execute("SELECT event_id FROM webhook_events").fetchall()
    connection.close()
    assert events == [("check-db-1",)]


def test_backup_verify_fails_when_the_source_is_damaged(capsys, tmp_path: Path):
    db = damaged_database(tmp_path / "damaged.db")
    copy = tmp_path / "copy.db"
    code, _, err = run(capsys, "backup", str(copy), "--db", str(db), "--verify")
    assert code == 1  # the backup API copies pages as they are: the damage comes along
    assert f"integrity check of {copy} FAILED:" in err
