"""A real PostgreSQL server for the tests: one per session, a fresh database per test.

The server is, in order: the one at ``BROKER_TEST_POSTGRES_URL`` (it must answer, or the session
fails loudly); else a throwaway cluster that this module initialises in a temp dir and starts on a
free 127.0.0.1 port when the server binaries are installed (as user ``postgres`` when we are root,
since initdb and postgres refuse root), stopped and deleted at session end; else the PostgreSQL
tests skip with a note, except under CI, where they fail (as the browser tests do), so CI never
passes by skipping them.

How databases are made: each test gets a database of its own, made by ``CREATE DATABASE ...
TEMPLATE`` and dropped ``WITH (FORCE)`` after it. An empty one is cloned from ``template0``. A
migrated one is cloned from this session's template: one database made at the first test that
needs it, brought up to the current schema by the broker's own ``PgStore.open`` (exactly what a
broker does to an empty database, so a clone cannot differ from a real store), then closed to
connections, since PostgreSQL clones only a database nobody is connected to. Each clone is made
in a thread while the test before runs (``ClonesAhead``), so a test rarely waits for one. The
session holds an advisory lock named after its template for as long as it lives; a template
whose lock is free belongs to a killed session and is dropped by the next one (a killed
session's throwaway cluster goes whole, as below).

Fixtures: ``postgres_server`` (an admin DSN), ``postgres_url`` (a new EMPTY database: migration,
copy-store and check-db tests), ``migrated_postgres_url`` (a new database holding the current
schema), ``store_url`` (each test once on SQLite, once on a migrated PostgreSQL database) and
``empty_store_url`` (the same, both empty: for tests of migrating).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from broker.store.engine.pg_admin import shown_url
from broker.store.opening import postgres_store

URL_ENV = "BROKER_TEST_POSTGRES_URL"
NO_SERVER = (
    "no PostgreSQL server: set BROKER_TEST_POSTGRES_URL or install postgresql; CI runs these"
)
# Databases this module makes, so a test (or a person) can tell them from anything else.
DATABASE_PREFIX = "broker_test_"
# A session's migrated template: this prefix, then 15 hex digits that are also its lock's key.
TEMPLATE_PREFIX = f"{DATABASE_PREFIX}template_"
_TEMPLATE_KEY_DIGITS = 15  # fits a positive bigint, pg_advisory_lock's key
# A test box: room for many pools at once; fsync stays on (the store's durability is tested).
SERVER_SETTINGS = {"max_connections": "200", "shared_buffers": "128MB"}
_TIMEOUT_SECONDS = 60
# A throwaway cluster's dir is named so, and holds the pid of the pytest that started it.
CLUSTER_PREFIX = "broker-test-pg-"
OWNER_FILE = "owner.pid"


class NoServer(StrEnum):
    """What a PostgreSQL test does when no server can be had."""

    SKIP = "skip"
    FAIL = "fail"


def in_ci(environ: Mapping[str, str]) -> bool:
    """CI is on when ``CI`` is set to anything but empty, ``0`` or ``false``."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false")


def no_server_outcome(environ: Mapping[str, str]) -> NoServer:
    """Skip on a developer's machine; fail under CI, which must run these tests."""
    return NoServer.FAIL if in_ci(environ) else NoServer.SKIP


def without_password(dsn: str) -> str:
    """The DSN as it may be printed: any password replaced by ``***`` (as the broker does)."""
    return shown_url(dsn)


def with_database(dsn: str, name: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def server_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: Debian's newest version, else ``pg_config``."""

    def version(initdb: str) -> int:
        found = re.search(r"/postgresql/(\d+)/", initdb)
        return int(found.group(1)) if found else 0

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if debian:
        return Path(debian[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    answer = subprocess.run(
        [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
    )
    bindir = Path(answer.stdout.strip())
    return bindir if answer.returncode == 0 and (bindir / "initdb").exists() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_server_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as ``postgres`` then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(
        _as_server_user(argv), capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


@dataclass(frozen=True)
class Cluster:
    dsn: str
    home: Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(bindir: Path, data: Path) -> None:
    # Immediate: the databases are thrown away, so no shutdown checkpoint is owed.
    argv = [str(bindir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(data)]
    subprocess.run(
        _as_server_user(argv), capture_output=True, check=False, timeout=_TIMEOUT_SECONDS
    )


def reap_orphans(bindir: Path, parent: Path) -> list[Path]:
    """Stop and delete the clusters whose pytest died without cleaning up (kill -9): their
    postgres would otherwise run on, detached, forever."""
    reaped = []
    for home in sorted(parent.glob(f"{CLUSTER_PREFIX}*")):
        try:
            owner = int((home / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        _stop(bindir, home / "data")
        shutil.rmtree(home, ignore_errors=True)
        reaped.append(home)
    return reaped


@contextlib.contextmanager
def throwaway_cluster(bindir: Path) -> Iterator[Cluster]:
    """A new cluster in a temp dir on a free 127.0.0.1 port.

    Everything it writes (data, socket, log) is under one temp dir, removed on the way out; if
    this process is killed first, the next session's ``reap_orphans`` removes it."""
    home = Path(tempfile.mkdtemp(prefix=CLUSTER_PREFIX))
    data, log = home / "data", home / "server.log"
    (home / OWNER_FILE).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    try:
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )  # fmt: skip
        port = _free_port()
        options = [
            "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
            "-c", f"unix_socket_directories={home}",
            *[arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")],
        ]  # fmt: skip
        _run(
            [str(bindir / "pg_ctl"), "start", "-w", "-t", str(_TIMEOUT_SECONDS), "-D", str(data),
             "-l", str(log), "-o", " ".join(options)],
            "starting PostgreSQL",
        )  # fmt: skip
        try:
            yield Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", home)
        finally:
            _stop(bindir, data)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _check_answers(dsn: str) -> None:
    """Fail the session at once if the configured server does not answer, without the password
    (nor the DSN in a traceback: the hidden frame and the failure outside the except)."""
    __tracebackhide__ = True
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        error = str(exc).replace(dsn, without_password(dsn))
    else:
        return
    pytest.fail(f"{URL_ENV}={without_password(dsn)} does not answer: {error}", pytrace=False)


def create_database(admin_dsn: str, template: str = "template0") -> str:
    """A new database, a clone of ``template`` (by default empty); returns its name."""
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\'')
    return name


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop it WITH (FORCE): a connection a test left open must not keep it alive."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(admin_dsn: str, template: str = "template0") -> Iterator[str]:
    """A new database for one test, a clone of ``template`` (by default empty), dropped WITH
    (FORCE) after it."""
    name = create_database(admin_dsn, template)
    try:
        yield with_database(admin_dsn, name)
    finally:
        drop_database(admin_dsn, name)


class ClonesAhead:
    """Clones of one template, each made in a thread while the test before it runs.

    CREATE DATABASE spends its time waiting on the disk (it writes and syncs the whole copy), so
    a test's setup takes the clone made during the previous test instead of waiting for its own.
    Each clone is handed out once; the one left unused is dropped at ``close``."""

    def __init__(self, admin_dsn: str, template: str) -> None:
        self._admin_dsn = admin_dsn
        self._template = template
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clone")
        self._next: Future[str] | None = None

    def _start_next(self) -> Future[str]:
        return self._thread.submit(create_database, self._admin_dsn, self._template)

    def take(self) -> str:
        """The name of a new clone, this caller's alone; the next one is started at once."""
        ready = self._next or self._start_next()
        self._next = self._start_next()
        return ready.result(timeout=_TIMEOUT_SECONDS)

    def close(self) -> None:
        if self._next is not None:
            with contextlib.suppress(psycopg.Error):  # it failed: then nothing was made
                drop_database(self._admin_dsn, self._next.result(timeout=_TIMEOUT_SECONDS))
            self._next = None
        self._thread.shutdown(wait=True)


def template_lock_key(name: str) -> int:
    """The advisory lock a session holds while its template ``name`` is in use."""
    return int(name.removeprefix(TEMPLATE_PREFIX), 16)


def _templates(admin: psycopg.Connection[Any]) -> list[str]:
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname",
        [TEMPLATE_PREFIX],
    ).fetchall()
    well_named = re.compile(rf"{TEMPLATE_PREFIX}[0-9a-f]{{{_TEMPLATE_KEY_DIGITS}}}")
    return [row[0] for row in rows if well_named.fullmatch(row[0])]


def reap_templates(admin_dsn: str) -> list[str]:
    """Drop the templates whose session died without dropping them (kill -9): their lock is free.

    Advisory locks belong to one database, so every session takes them on the admin DSN's."""
    reaped = []
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        for name in _templates(admin):
            key = template_lock_key(name)
            taken = admin.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            if taken is None or not taken[0]:
                continue  # its session lives
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                admin.execute("SELECT pg_advisory_unlock(%s)", [key])
            reaped.append(name)
    return reaped


def migrate_as_a_store_does(url: str) -> None:
    """Open the broker's PostgreSQL store on ``url`` and close it: its migrations, nothing else.

    In a thread of its own, so it can run its event loop whatever loop the caller is in."""

    async def open_and_close() -> None:
        store = postgres_store(url, pool_size=1)
        await store.open()
        await store.close()

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, open_and_close()).result()


@contextlib.contextmanager
def migrated_template(admin_dsn: str) -> Iterator[str]:
    """A database holding the current schema, closed to connections, to be cloned by each test
    that wants a migrated database; dropped on the way out, or by a later session if killed."""
    name = f"{TEMPLATE_PREFIX}{uuid.uuid4().hex[:_TEMPLATE_KEY_DIGITS]}"
    with psycopg.connect(admin_dsn, autocommit=True) as owner:
        # Taken before the template exists, held until it is gone: a live session's template is
        # never reaped, and a dead session's lock is released by the server with its connection.
        owner.execute("SELECT pg_advisory_lock(%s)", [template_lock_key(name)])
        reap_templates(admin_dsn)
        owner.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        try:
            migrate_as_a_store_does(with_database(admin_dsn, name))
            # CREATE DATABASE ... TEMPLATE refuses a template anyone is connected to: no one can.
            owner.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            yield name
        finally:
            owner.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin DSN of a PostgreSQL server for this session (see the module docstring)."""
    configured = os.environ.get(URL_ENV)
    if configured:
        _check_answers(configured)
        yield configured
        return
    bindir = server_bindir()
    if bindir is None:
        if no_server_outcome(os.environ) is NoServer.FAIL:
            pytest.fail(f"{NO_SERVER} (CI is set, so this fails instead of skipping)")
        pytest.skip(NO_SERVER)
    reap_orphans(bindir, Path(tempfile.gettempdir()))
    with throwaway_cluster(bindir) as cluster:
        yield cluster.dsn


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a database made for this test alone: fresh, EMPTY (no schema), dropped after."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """This session's migrated template (see the module docstring), made once, when first needed."""
    with migrated_template(postgres_server) as name:
        yield name


@pytest.fixture(scope="session")
def migrated_clones(postgres_server: str, postgres_template: str) -> Iterator[ClonesAhead]:
    """Clones of the session's template, one made ahead (dropped before the template is)."""
    clones = ClonesAhead(postgres_server, postgres_template)
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture
def migrated_postgres_url(postgres_server: str, migrated_clones: ClonesAhead) -> Iterator[str]:
    """The URL of a database made for this test alone, holding the current schema: a clone of
    the session's template, dropped after the test."""
    name = migrated_clones.take()
    try:
        yield with_database(postgres_server, name)
    finally:
        drop_database(postgres_server, name)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL for this run of the test: SQLite in tmp_path, or a fresh PostgreSQL
    database already migrated (``-m "not postgresql"`` leaves the second out)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """As ``store_url``, but the PostgreSQL database is empty too: no schema, nothing applied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def store_section(url: str) -> dict[str, Any]:
    """The broker's store settings for ``store_url``'s value. A module runs its broker tests on
    both backends by overriding conftest's ``broker_store`` fixture with this."""
    return {"url": url}
