"""The zapikey never lands in the database, ``deliveries show`` or a log line, even when the
platform echoes the request URL (key and all) in its error body, as JSON or as an HTML page.

The key used here holds ``+``, ``/`` and ``=`` so that its percent-encoded forms differ from it.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from broker import cli
from broker.logs import configure_logging
from broker.redaction import REDACTED, Redactor, redact_zapikey_pairs, redacted
from broker.simulators.platform import PlatformSimulator
from tests.conftest import db_rows, post_event
from tests.support.basics import eventually, subscription_event

Client = TestClient[web.Request, web.Application]

KEY = "1003.Zk+ab/cd=ef0123456789"
# Every form the key could come back in: as is, percent-encoded both ways, JSON-escaped.
KEY_FORMS = {KEY, quote(KEY, safe=""), quote_plus(KEY), quote(KEY), json.dumps(KEY)[1:-1]}


@pytest.fixture
def simulator() -> PlatformSimulator:
    return PlatformSimulator(KEY)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    access = logging.getLogger("aiohttp.access")
    level = access.level
    stream = io.StringIO()
    yield stream
    structlog.reset_defaults()
    access.setLevel(level)


def leaks(text: str) -> list[str]:
    return [form for form in KEY_FORMS if form in text]


def database_bytes(db: Path) -> str:
    """The database as it sits on disk: the main file and its write-ahead log."""
    parts = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
    return b"".join(p.read_bytes() for p in parts).decode("latin-1")


def show_delivery(
    capsys: pytest.CaptureFixture[str], db: Path, delivery_id: int, *extra: str
) -> str:
    assert cli.main(["deliveries", "show", str(delivery_id), "--db", str(db), *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("echo", ["json", "html"])
async def test_platform_echoing_the_zapikey_leaves_no_trace_in_db_show_or_logs(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    log_stream: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    echo: Literal["json", "html"],
) -> None:
    configure_logging(fmt="json", secrets=[KEY], stream=log_stream)
    client: Client = await make_broker(platform={"zapikey": KEY})
    simulator.echo_request_url(echo)
    simulator.fail_next(1, 400)  # a refusal: kept as a dead letter with the response

    assert (await post_event(client, subscription_event(), key=KEY)).status == 200

    async def dead() -> bool:
        return bool(await db_rows(client, "SELECT id FROM deliveries WHERE state = 'dead'"))

    await eventually(dead, message="the refused delivery is dead-lettered")
    [attempt] = await db_rows(client, "SELECT * FROM attempts")
    # The platform did echo the key: the test would prove nothing otherwise.
    [call] = simulator.calls
    assert call.status == 400
    excerpt = attempt["response_excerpt"]
    assert REDACTED in excerpt
    assert "request_url" in excerpt or "Request:" in excerpt

    db = tmp_path / "broker.db"
    assert leaks(database_bytes(db)) == []
    monkeypatch.delenv("BROKER_PLATFORM__ZAPIKEY", raising=False)
    shown = show_delivery(capsys, db, attempt["delivery_id"])
    assert "zapikey=***" in shown
    assert leaks(shown) == []
    assert leaks(log_stream.getvalue()) == []


def test_deliveries_show_hides_a_key_stored_before_redaction_existed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written by an older broker may hold the key: showing them must not print it."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, subscription_id TEXT, state TEXT,"
        " action TEXT, attempts INT, uncertain INT, cause TEXT, created_at REAL,"
        " next_attempt_at REAL, finished_at REAL, last_status INT, last_error TEXT);"
        "CREATE TABLE attempts (id INTEGER PRIMARY KEY, delivery_id INT, started_at REAL,"
        " latency_ms REAL, method TEXT, url TEXT, request_body TEXT, status INT, outcome TEXT,"
        " error TEXT, response_excerpt TEXT);"
    )
    conn.execute(
        "INSERT INTO deliveries VALUES (1, '1', 'dead', 'add', 1, 0, 'x', 0, 0, 0, 400, ?)",
        [f"HTTP 400: bad key {KEY}"],
    )
    conn.execute(
        "INSERT INTO attempts (id, delivery_id, started_at, latency_ms, method, url, request_body,"
        " status, outcome, error, response_excerpt) VALUES (1, 1, 0, 5, 'POST', ?, '{}', 400,"
        " 'reject', ?, ?)",
        [
            f"https://p/x?zapikey={quote(KEY, safe='')}",
            f"refused {KEY}",
            json.dumps({"url": f"https://p/x?zapikey={KEY}", "key": KEY}),
        ],
    )
    conn.commit()
    conn.close()

    # Without settings the pairs are still hidden; the bare key needs the configured secret.
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "testapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", KEY)
    shown = show_delivery(capsys, db, 1)
    assert leaks(shown) == []
    assert shown.count(REDACTED) >= 4

    assert cli.main(["deliveries", "list", "--json", "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    assert leaks(listed) == []


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('{"zapikey": "abc+/="}', '{"zapikey": "***"}'),
        ("zapikey: abc def", "zapikey: *** def"),
        ("u%3Fzapikey%3Dab%2Bc%26next%3D1", "u%3Fzapikey%3D***%26next%3D1"),
        ('<a href="/p?a=1&amp;zapikey=abc">', '<a href="/p?a=1&amp;zapikey=***">'),
        ("no key here: zapikey header missing", "no key here: zapikey header missing"),
    ],
)
def test_zapikey_pairs_are_hidden_in_every_echo_form(text: str, shown: str) -> None:
    assert redact_zapikey_pairs(text) == shown


def test_redactor_hides_every_encoding_of_a_known_secret() -> None:
    redactor = Redactor([KEY])
    for form in KEY_FORMS | {"1003.Zk%2bab%2fcd%3def0123456789"}:
        assert redactor(f"before {form} after") == f"before {REDACTED} after", form


def test_redacted_hides_secret_settings_and_secrets_inside_printed_data() -> None:
    """What check-config and the database commands print goes through one ``redacted``: a set
    secret setting shows as ``***``, an unset one stays empty (so "not set" still shows), and a
    secret inside any string, bytes or nested row is hidden like a log line."""
    data = {
        "platform": {"zapikey": SecretStr(KEY), "unset": SecretStr(""), "port": 8080},
        "rows": [{"url": f"https://x.test/api?zapikey={KEY}&a=1", "body": f"echo {KEY}".encode()}],
    }
    assert redacted(data, Redactor([KEY])) == {
        "platform": {"zapikey": REDACTED, "unset": "", "port": 8080},
        "rows": [{"url": f"https://x.test/api?zapikey={REDACTED}&a=1", "body": f"echo {REDACTED}"}],
    }
