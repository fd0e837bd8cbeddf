"""``broker migrate`` on both backends (and three at once on PostgreSQL, as replicas starting
together would), ``check-db`` and ``backup`` on PostgreSQL, and a clear exit 1 without the
password or a traceback when the server cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from broker.store.copy_store import BOOKKEEPING
from broker.store.engine import sqlite
from broker.store.migrations import SCHEMA
from broker.store.migrations.runner import apply_migrations
from tests.support.cli import run_cli

ALL_MIGRATIONS = [migration.name for migration in SCHEMA]
# Nothing listens here (the ports given to this engineer; the tests never start a server on it).
UNREACHABLE = "postgresql://broker:s3cretpw@127.0.0.1:19499/broker"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BROKER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_migrate_applies_every_migration_once_then_is_up_to_date(empty_store_url: str, capsys):
    code, out, err = run_cli(capsys, "migrate", "--db", empty_store_url)
    assert code == 0, err
    assert f"applied {len(ALL_MIGRATIONS)} migrations" in out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert listed == ALL_MIGRATIONS

    code, out, _ = run_cli(capsys, "migrate", "--db", empty_store_url)
    assert code == 0
    assert f"up to date ({len(ALL_MIGRATIONS)} migrations applied)" in out


def test_migrate_reads_the_store_url_from_the_environment(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
):
    secret = tmp_path / "store-url"
    secret.write_text(postgres_url + "\n")
    monkeypatch.setenv("BROKER_STORE__URL_FILE", str(secret))
    code, out, _ = run_cli(capsys, "migrate")
    assert code == 0
    assert f"applied {len(ALL_MIGRATIONS)} migrations" in out
    assert not (tmp_path / "broker.db").exists()  # not the SQLite default


def test_an_unreachable_server_is_a_clear_error_without_the_password(capsys):
    for argv in (["migrate"], ["check-db"], ["deliveries", "list"]):
        code, out, err = run_cli(capsys, *argv, "--db", UNREACHABLE)
        assert code == 1, argv
        assert "cannot reach the PostgreSQL database at" in err
        assert "postgresql://broker:***@127.0.0.1:19499/broker" in err
        assert "s3cretpw" not in out + err
        assert "Traceback" not in err


def test_three_migrates_at_once_apply_each_migration_once(postgres_url: str, tmp_path: Path):
    argv = [sys.executable, "-m", "broker", "migrate", "--db", postgres_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    outs = [out for _, out, _ in results]
    assert sum(f"applied {len(ALL_MIGRATIONS)} migrations" in out for out in outs) == 1
    assert sum("up to date" in out for out in outs) == 2
    with psycopg.connect(postgres_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM broker_migrations ORDER BY name")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
    assert names == sorted(ALL_MIGRATIONS)
    own = {"broker_migrations", "broker_write_lock"}  # PostgreSQL-only bookkeeping
    assert tables - own == sqlite_tables(tmp_path / "reference.db")


def sqlite_tables(path: Path) -> set[str]:
    """The broker's tables as the migrations make them on SQLite (the schema to match)."""
    db = sqlite.connect(path)
    try:
        apply_migrations(db)
        rows = db.select_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    finally:
        db.conn.close()
    return {row["name"] for row in rows} - BOOKKEEPING


def test_check_db_on_postgresql_checks_reachability_and_schema(postgres_url: str, capsys):
    code, _, err = run_cli(capsys, "check-db", "--db", postgres_url)
    assert code == 1
    assert "no broker schema: run `broker migrate`" in err
    assert run_cli(capsys, "migrate", "--db", postgres_url)[0] == 0
    code, out, _ = run_cli(capsys, "check-db", "--db", postgres_url)
    assert code == 0
    assert f"reachable; schema up to date ({len(ALL_MIGRATIONS)} migrations)" in out
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM broker_migrations WHERE name = %s", [ALL_MIGRATIONS[-1]])
    code, _, err = run_cli(capsys, "check-db", "--db", postgres_url)
    assert code == 1
    assert f"schema behind (pending: {ALL_MIGRATIONS[-1]})" in err


def test_backup_of_postgresql_points_to_pg_dump_without_the_password(capsys, tmp_path: Path):
    url = UNREACHABLE  # the guidance needs no connection
    code, out, err = run_cli(capsys, "backup", str(tmp_path / "copy.db"), "--db", url)
    assert code == 2
    assert "pg_dump -Fc -d 'postgresql://broker:***@127.0.0.1:19499/broker' -f" in err
    assert "pg_restore -d" in err
    assert "s3cretpw" not in out + err
    assert not (tmp_path / "copy.db").exists()


def test_operator_commands_on_a_database_without_the_schema_say_migrate(postgres_url: str, capsys):
    code, _, err = run_cli(capsys, "deliveries", "list", "--db", postgres_url)
    assert code == 1
    assert "no broker schema" in err
    assert "run `broker migrate`" in err
