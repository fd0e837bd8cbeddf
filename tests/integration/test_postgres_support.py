"""The PostgreSQL test fixtures keep their promises: a fresh, empty database per test, a
different one for each test, dropped after it, a migrated one that is what a store makes of an
empty one, a session's template reaped only once its session is dead, and skip-or-fail decided
by the CI rule."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest

from broker.store.migrations import SCHEMA
from broker.store.migrations.runner import MIGRATIONS_TABLE
from broker.store.opening import postgres_store
from tests.support.postgres import (
    DATABASE_PREFIX,
    NO_SERVER,
    OWNER_FILE,
    TEMPLATE_PREFIX,
    NoServer,
    fresh_database,
    no_server_outcome,
    reap_orphans,
    reap_templates,
    server_bindir,
    template_lock_key,
    throwaway_cluster,
    with_database,
    without_password,
)

pytest_plugins = ["pytester"]

# A session inside the test: our fixtures as its plugin, our marker and loop settings.
INNER_CONFTEST = 'pytest_plugins = ["tests.support.postgres"]'
INNER_INI = """[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    postgresql: needs a PostgreSQL server
"""


def _inner_session(pytester: pytest.Pytester, **tests: str) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini(INNER_INI)
    pytester.makepyfile(**tests)


def _databases(admin_dsn: str) -> set[str]:
    with psycopg.connect(admin_dsn) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    return {row[0] for row in rows}


def _schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a migration can make, as the catalogs describe it; and what is recorded."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable"
        " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' ORDER BY 1, 2",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
        "sequences": "SELECT sequence_name FROM information_schema.sequences ORDER BY 1",
        "migrations": f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name",  # noqa: S608
    }
    with psycopg.connect(url) as conn:
        return {what: conn.execute(sql).fetchall() for what, sql in queries.items()}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, NoServer.SKIP),
        ({"CI": ""}, NoServer.SKIP),
        ({"CI": "0"}, NoServer.SKIP),
        ({"CI": "false"}, NoServer.SKIP),
        ({"CI": "False"}, NoServer.SKIP),
        ({"CI": "1"}, NoServer.FAIL),
        ({"CI": "true"}, NoServer.FAIL),
        ({"CI": "yes"}, NoServer.FAIL),
    ],
)
def test_no_server_skips_on_a_developer_machine_and_fails_under_ci(
    environ: dict[str, str], expected: NoServer
) -> None:
    assert no_server_outcome(environ) is expected


def test_the_skip_note_says_how_to_get_a_server() -> None:
    assert "BROKER_TEST_POSTGRES_URL" in NO_SERVER
    assert "install postgresql" in NO_SERVER


def test_a_password_never_prints() -> None:
    assert (
        without_password("postgresql://app:s3cret@db.example:5432/broker")
        == "postgresql://app:***@db.example:5432/broker"
    )
    assert (
        without_password("postgresql://postgres@127.0.0.1:5/x")
        == "postgresql://postgres@127.0.0.1:5/x"
    )


@pytest.mark.postgresql
def test_the_database_is_fresh_and_empty(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
        # Writable: the store will create its schema here.
        conn.execute("CREATE TABLE probe (id integer PRIMARY KEY)")
    assert name is not None
    assert name[0].startswith(DATABASE_PREFIX)
    assert tables == (0,)


@pytest.mark.postgresql
def test_a_database_is_dropped_when_its_test_ends(postgres_server: str) -> None:
    started = time.perf_counter()
    with fresh_database(postgres_server) as url:
        name = url.rsplit("/", 1)[1]
        assert name in _databases(postgres_server)
        # A connection the test left open must not keep its database alive: WITH (FORCE).
        left_open = psycopg.connect(url)
    try:
        assert name not in _databases(postgres_server)
        with pytest.raises(psycopg.OperationalError):
            left_open.execute("SELECT 1")
    finally:
        left_open.close()
    # Made and dropped in well under a second, or hundreds of store tests would crawl.
    assert time.perf_counter() - started < 2.0


@pytest.mark.postgresql
async def test_a_migrated_database_is_what_a_store_makes_of_an_empty_one(
    postgres_url: str, migrated_postgres_url: str
) -> None:
    store = postgres_store(postgres_url, pool_size=1)
    await store.open()
    await store.close()
    by_the_store, cloned = _schema(postgres_url), _schema(migrated_postgres_url)
    assert cloned == by_the_store
    # Every migration of the list, and a real schema, not two empty ones.
    assert cloned["migrations"] == sorted((migration.name,) for migration in SCHEMA)
    assert ("deliveries", "state", "text", None, "NO") in cloned["columns"]


@pytest.mark.postgresql
def test_each_migrated_database_is_its_own_and_writable(
    migrated_postgres_url: str, postgres_server: str, postgres_template: str
) -> None:
    with psycopg.connect(migrated_postgres_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        conn.execute("INSERT INTO broker_write_lock (held) VALUES (true)")
    assert name is not None
    assert name[0].startswith(DATABASE_PREFIX)
    assert not name[0].startswith(TEMPLATE_PREFIX)
    # Another clone does not see this one's row.
    with (
        fresh_database(postgres_server, postgres_template) as other,
        psycopg.connect(other) as conn,
    ):
        assert conn.execute("SELECT count(*) FROM broker_write_lock").fetchone() == (0,)


@pytest.mark.postgresql
def test_no_one_can_connect_to_the_template_so_cloning_it_never_fails(
    postgres_server: str, postgres_template: str
) -> None:
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(with_database(postgres_server, postgres_template), connect_timeout=5)


@pytest.mark.postgresql
def test_a_template_left_by_a_killed_session_is_dropped_and_a_live_ones_kept(
    postgres_server: str, postgres_template: str
) -> None:
    dead, live = (f"{TEMPLATE_PREFIX}{uuid.uuid4().hex[:15]}" for _ in range(2))
    with psycopg.connect(postgres_server, autocommit=True) as killed:
        # The dead session took its lock and made its template; its connection then ended, as a
        # killed process's does, and the server released the lock.
        killed.execute("SELECT pg_advisory_lock(%s)", [template_lock_key(dead)])
        killed.execute(f'CREATE DATABASE "{dead}" TEMPLATE template0')
    with psycopg.connect(postgres_server, autocommit=True) as living:
        living.execute("SELECT pg_advisory_lock(%s)", [template_lock_key(live)])
        living.execute(f'CREATE DATABASE "{live}" TEMPLATE template0')
        try:
            assert reap_templates(postgres_server) == [dead]
            left = _databases(postgres_server)
            assert dead not in left
            assert {live, postgres_template} <= left  # this session's own is alive too
        finally:
            living.execute(f'DROP DATABASE "{live}" WITH (FORCE)')


@pytest.mark.postgresql
def test_two_tests_get_different_databases_each_dropped_after(
    postgres_server: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A session of its own, on this session's server, runs two tests that note their URLs.
    monkeypatch.setenv("BROKER_TEST_POSTGRES_URL", postgres_server)
    notes = pytester.path / "urls"
    notes.mkdir()
    _inner_session(
        pytester,
        test_two=f"""
        from pathlib import Path

        def test_one(postgres_url):
            Path({str(notes)!r}, "one").write_text(postgres_url)

        def test_two(postgres_url):
            Path({str(notes)!r}, "two").write_text(postgres_url)
        """,
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    one, two = ((notes / n).read_text() for n in ("one", "two"))
    assert one != two
    names = {url.rsplit("/", 1)[1] for url in (one, two)}
    assert names.isdisjoint(_databases(postgres_server))


@pytest.mark.postgresql
def test_a_session_clones_one_template_and_leaves_no_database_behind(
    postgres_server: str,
    postgres_template: str,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKER_TEST_POSTGRES_URL", postgres_server)
    notes = pytester.path / "templates"
    notes.mkdir()
    _inner_session(
        pytester,
        test_two=f"""
        from pathlib import Path

        def test_one(migrated_postgres_url, postgres_template):
            Path({str(notes)!r}, "one").write_text(postgres_template)

        def test_two(migrated_postgres_url, postgres_template):
            Path({str(notes)!r}, "two").write_text(postgres_template)
        """,
    )
    before = _databases(postgres_server)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    one, two = ((notes / n).read_text() for n in ("one", "two"))
    assert one == two != postgres_template
    # Its template, its two clones and the one it made ahead are gone; this session's are kept.
    assert _databases(postgres_server) == before
    assert postgres_template in before


def test_store_url_runs_a_test_on_both_backends_and_the_marker_deselects_postgresql(
    pytester: pytest.Pytester,
) -> None:
    _inner_session(
        pytester,
        test_backends="""
        def test_url(store_url, tmp_path):
            assert store_url.startswith(("sqlite:///", "postgresql://"))
            if store_url.startswith("sqlite"):
                assert store_url == f"sqlite:///{tmp_path / 'broker.db'}"
        """,
    )
    # Only the marker tells them apart: -m "not postgresql" runs SQLite alone, without a server.
    result = pytester.runpytest_inprocess("-m", "not postgresql", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*test_backends.py::test_url?sqlite? PASSED*"])
    collected = pytester.runpytest_inprocess("--collect-only", "-q").stdout.str()
    assert "test_backends.py::test_url[sqlite]" in collected
    assert "test_backends.py::test_url[postgresql]" in collected


def test_a_configured_server_that_does_not_answer_fails_loudly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 on loopback (discard) has no PostgreSQL; the password must not print.
    monkeypatch.setenv("BROKER_TEST_POSTGRES_URL", "postgresql://app:s3cret@127.0.0.1:9/x")
    _inner_session(pytester, test_pg="def test_needs(postgres_url):\n    pass\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "does not answer" in output
    assert "s3cret" not in output


@pytest.mark.postgresql
@pytest.mark.usefixtures("postgres_server")  # skips (or fails under CI) as the others do
def test_a_cluster_left_by_a_killed_session_is_stopped_and_deleted_by_the_next() -> None:
    bindir = server_bindir()
    if bindir is None:
        pytest.skip("the server here is BROKER_TEST_POSTGRES_URL's; no binaries to start one")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    with throwaway_cluster(bindir) as cluster:
        # As if the pytest that started it had been killed: its owner is gone.
        (cluster.home / OWNER_FILE).write_text(dead.stdout.strip())
        ours = reap_orphans(bindir, cluster.home.parent)
        assert ours == [cluster.home]
        assert not cluster.home.exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(cluster.dsn, connect_timeout=5)


@pytest.mark.postgresql
@pytest.mark.usefixtures("postgres_server")
def test_a_live_sessions_cluster_is_left_alone() -> None:
    bindir = server_bindir()
    if bindir is None:
        pytest.skip("the server here is BROKER_TEST_POSTGRES_URL's; no binaries to start one")
    with throwaway_cluster(bindir) as cluster:
        assert cluster.home not in reap_orphans(bindir, cluster.home.parent)
        with psycopg.connect(cluster.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
