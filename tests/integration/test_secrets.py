"""Secrets never print: not in a log line, not in the database, not in ``check-config``.

The log test configures structlog exactly as ``broker serve`` does (JSON, the settings' secrets
handed to the redactor) with a StringIO as the stream, and drives a flow through every path that
touches the zapikey: accepted events, a refused key, a 503 retried, a dropped connection and a
dead letter.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yarl
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker import cli
from broker.logs import REDACTED, SecretRedactor, configure_logging, redact_url
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import store_key
from tests.conftest import db_rows, fast_settings
from tests.support.basics import LINK_SECRET, ZAPIKEY, eventually, subscription_event

Client = TestClient[web.Request, web.Application]

SIGNING_SECRET = "sign-me-secret-0123456789"
EXTRA_KEY = "rotated-key-abcdefghijkl"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every structlog line of the test, as the service would write it; defaults restored after."""
    access = logging.getLogger("aiohttp.access")
    access_level = access.level
    stream = io.StringIO()
    yield stream
    structlog.reset_defaults()
    access.setLevel(access_level)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line must be JSON, or this fails


def signed_headers(body: bytes, key: str = ZAPIKEY) -> dict[str, str]:
    signature = hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "zapikey": key,
        "X-Zoho-Webhook-Signature": signature,
    }


async def post_signed(client: Client, payload: dict[str, Any], key: str = ZAPIKEY) -> int:
    body = json.dumps(payload).encode()
    async with client.post("/webhooks/billing", data=body, headers=signed_headers(body, key)) as r:
        await r.read()
        return r.status


def customer(n: int) -> dict[str, Any]:
    """A distinct subscription, org and user, so each step of the flow is its own delivery."""
    return {
        "subscription_id": f"10000000000000000{n}",
        "zuid": f"6000000000{n}",
        "zgid": f"7000000000{n}",
        "customer_id": f"90000000000000000{n}",
    }


async def delivery_states(client: Client, subscription_id: str) -> list[str]:
    rows = await db_rows(
        client, "SELECT state FROM deliveries WHERE subscription_id = ?", [subscription_id]
    )
    return [row["state"] for row in rows]


async def every_stored_text(client: Client) -> list[tuple[str, str, str]]:
    """(table, column, text) for every value of every table in the broker's database."""

    def scan(db: Any) -> list[tuple[str, str, str]]:
        found = []
        tables = db.select_all("SELECT name FROM sqlite_master WHERE type = 'table'")
        for table in [t["name"] for t in tables]:
            for row in db.select_all(f"SELECT * FROM [{table}]"):  # noqa: S608 - names from sqlite
                for column, value in row.items():
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="replace")
                    found.append((table, column, str(value)))
        return found

    return await client.app[store_key].read(scan)


async def test_no_log_line_or_stored_value_carries_a_secret_across_every_delivery_path(
    tmp_path: Path,
    platform_server: TestServer,
    simulator: PlatformSimulator,
    make_broker,
    log_stream: io.StringIO,
    caplog: pytest.LogCaptureFixture,
):
    sections: dict[str, dict[str, Any]] = {
        "webhooks": {"signing_secret": SIGNING_SECRET, "extra_zapikeys": [EXTRA_KEY]}
    }
    settings = fast_settings(tmp_path, str(platform_server.make_url("")).rstrip("/"), **sections)
    secrets = settings.secrets()
    assert set(secrets) == {ZAPIKEY, SIGNING_SECRET, EXTRA_KEY, LINK_SECRET}
    configure_logging(fmt="json", secrets=secrets, stream=log_stream)
    client = await make_broker(**sections)

    # 1. An accepted event reaches the platform.
    first = customer(1)
    assert await post_signed(client, subscription_event(**first)) == 200
    await simulator.wait_until(lambda s: any(c.zgid == first["zgid"] for c in s.applied))

    # 2. A wrong key is refused; the rotated key is accepted.
    assert await post_signed(client, subscription_event(**customer(9)), key="wrong-key-xyz") == 401
    second = customer(2)
    assert await post_signed(client, subscription_event(**second), key=EXTRA_KEY) == 200
    await simulator.wait_until(lambda s: any(c.zgid == second["zgid"] for c in s.applied))

    # 3. The platform answers 503 once, then the retry succeeds.
    simulator.fail_next(1, 503)
    third = customer(3)
    assert await post_signed(client, subscription_event(**third)) == 200
    await simulator.wait_until(lambda s: any(c.zgid == third["zgid"] for c in s.applied))
    assert [c.status for c in simulator.calls if c.zgid == third["zgid"]] == [503, 200]

    # 4. The platform drops the connection, then comes back.
    simulator.go_down()
    fourth = customer(4)
    assert await post_signed(client, subscription_event(**fourth)) == 200
    await simulator.wait_until(
        lambda s: any(c.zgid == fourth["zgid"] and c.status == 0 for c in s.calls)
    )
    simulator.come_up()
    await simulator.wait_until(lambda s: any(c.zgid == fourth["zgid"] for c in s.applied))

    # 5. The platform refuses with 400: a dead letter.
    simulator.fail_next(1, 400)
    fifth = customer(5)
    assert await post_signed(client, subscription_event(**fifth)) == 200

    everyone = [first, second, third, fourth, fifth]
    expected = {c["subscription_id"]: "done" for c in everyone} | {fifth["subscription_id"]: "dead"}

    async def settled() -> bool:
        # The database row and the log line are both written after the call; wait for both.
        stored = {
            c["subscription_id"]: await delivery_states(client, c["subscription_id"])
            for c in everyone
        }
        logged = {
            line["subscription_id"]: line["state"]
            for line in log_lines(log_stream)
            if line["event"] == "delivery.attempt"
        }
        return stored == {k: [v] for k, v in expected.items()} and logged == expected

    await eventually(settled, message="every delivery finished, in the database and the log")

    # The logs: JSON lines covering the whole flow, and not one secret in them.
    text = log_stream.getvalue()
    lines = log_lines(log_stream)
    accepted = [
        line
        for line in lines
        if line["event"] == "http.request"
        and line.get("path") == "/webhooks/billing"
        and line["status"] == 200
    ]
    assert len(accepted) == 5
    assert all(line.get("event_id") and line.get("outcome") for line in accepted)
    assert any(line["event"] == "http.refused" and line["status"] == 401 for line in lines), (
        "the wrong key was not logged"
    )
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:4]}...) reached the log"
    assert ZAPIKEY not in caplog.text

    # Every delivery line names its URL, with the zapikey shown only as ***.
    attempts = [line for line in lines if line["event"] == "delivery.attempt"]
    states = [(line["subscription_id"], line["state"]) for line in attempts]
    assert (third["subscription_id"], "pending") in states
    assert (fourth["subscription_id"], "pending") in states
    assert (fifth["subscription_id"], "dead") in states
    assert len(attempts) >= 7
    for line in attempts:
        assert "?zapikey=***" in line["url"], line
        assert line["url"].startswith(str(platform_server.make_url("/crm/v2/settings/")))

    # The database: attempts keep the redacted URL; no column anywhere holds a secret.
    urls = await db_rows(client, "SELECT url FROM attempts")
    assert urls
    assert all(row["url"].endswith("?zapikey=***") for row in urls)
    stored = await every_stored_text(client)
    assert {table for table, _, _ in stored} >= {"deliveries", "attempts", "webhook_events"}
    leaks = [(t, c) for t, c, value in stored for s in secrets if s in value]
    assert leaks == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://testapp.zohoplatform.com/crm/v2/settings/subscription/1/plan/2?zapikey={ZAPIKEY}",
            "https://testapp.zohoplatform.com/crm/v2/settings/subscription/1/plan/2?zapikey=***",
        ),
        (f"https://h/p?a=1&zapikey={ZAPIKEY}&b=2", "https://h/p?a=1&zapikey=***&b=2"),
        (f"https://h/p?ZAPIKEY={ZAPIKEY}", "https://h/p?ZAPIKEY=***"),
        (f"https://h/p?ZapiKey={ZAPIKEY}#frag", "https://h/p?ZapiKey=***#frag"),
        ("https://h/p?zapikey=", "https://h/p?zapikey=***"),
        ("https://h/p?zapikey=a%2Fb%3D", "https://h/p?zapikey=***"),
        (f"GET /p?zapikey={ZAPIKEY} HTTP/1.1", "GET /p?zapikey=*** HTTP/1.1"),
        (
            f"first ?zapikey={ZAPIKEY} then &zapikey=other",
            "first ?zapikey=*** then &zapikey=***",
        ),
        ("https://h/p?a=1", "https://h/p?a=1"),
        ("https://h/zapikey/p", "https://h/zapikey/p"),
    ],
)
def test_redact_url_hides_every_zapikey_query_value_and_nothing_else(url: str, shown: str):
    assert redact_url(url) == shown


def test_redactor_scrubs_known_secrets_in_nested_fields():
    redactor = SecretRedactor([ZAPIKEY, SIGNING_SECRET])
    event = {
        "event": "x",
        "error": f"upstream said {ZAPIKEY} is wrong",
        "nested": {"list": [f"sig {SIGNING_SECRET}", 3], "tuple": (ZAPIKEY,)},
        "count": 7,
    }
    cleaned = redactor(None, "info", event)
    assert cleaned == {
        "event": "x",
        "error": f"upstream said {REDACTED} is wrong",
        "nested": {"list": [f"sig {REDACTED}", 3], "tuple": [REDACTED]},
        "count": 7,
    }


def test_redactor_replaces_a_secret_that_contains_another_whole():
    redactor = SecretRedactor(["abcd", "abcd-efgh-ijkl"])
    assert redactor.scrub("key abcd-efgh-ijkl and abcd") == f"key {REDACTED} and {REDACTED}"


def test_secret_inside_an_exception_message_is_scrubbed_from_the_log(log_stream: io.StringIO):
    configure_logging(fmt="json", secrets=[ZAPIKEY], stream=log_stream)
    log = structlog.get_logger("test")
    try:
        raise RuntimeError(f"platform refused zapikey {ZAPIKEY} for org 1")
    except RuntimeError:
        log.exception("call.failed", detail=f"key was {ZAPIKEY}")
    [line] = log_lines(log_stream)
    assert line["event"] == "call.failed"
    assert "RuntimeError: platform refused zapikey *** for org 1" in line["exception"]
    assert line["detail"] == "key was ***"
    assert ZAPIKEY not in log_stream.getvalue()


def test_console_format_is_redacted_too(log_stream: io.StringIO):
    configure_logging(fmt="console", secrets=[ZAPIKEY], stream=log_stream)
    structlog.get_logger("test").warning("boom", url=f"https://h/p?zapikey={ZAPIKEY}")
    text = log_stream.getvalue()
    assert "boom" in text
    assert "zapikey=***" in text
    assert ZAPIKEY not in text


@pytest.mark.parametrize(
    "value",
    [
        yarl.URL(f"https://testapp.zohoplatform.com/p?zapikey={ZAPIKEY}"),
        RuntimeError(f"refused {ZAPIKEY}"),
    ],
    ids=["yarl-url", "exception"],
)
def test_secret_in_a_non_string_log_field_is_scrubbed(log_stream: io.StringIO, value: Any):
    configure_logging(fmt="json", secrets=[ZAPIKEY], stream=log_stream)
    structlog.get_logger("test").warning("call.failed", error=value)
    assert "call.failed" in log_stream.getvalue()
    assert ZAPIKEY not in log_stream.getvalue()


# --- check-config ----------------------------------------------------------------------------


@pytest.fixture
def broker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean BROKER_ environment (restored after), run from an empty directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("BROKER_CONFIG", "PORT", "BROKER_SERVER__PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "testapp")
    return monkeypatch


def test_check_config_prints_settings_with_every_secret_hidden(
    broker_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    broker_env.setenv("BROKER_PLATFORM__ZAPIKEY", ZAPIKEY)
    broker_env.setenv("BROKER_WEBHOOKS__SIGNING_SECRET", SIGNING_SECRET)
    broker_env.setenv("BROKER_WEBHOOKS__EXTRA_ZAPIKEYS", json.dumps([EXTRA_KEY]))
    assert cli.main(["check-config"]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["platform"]["app_domain"] == "testapp"
    assert shown["platform"]["zapikey"] == "***"
    assert shown["webhooks"]["signing_secret"] == "***"
    assert shown["webhooks"]["extra_zapikeys"] == ["***"]
    assert "configuration OK" in err
    for secret in (ZAPIKEY, SIGNING_SECRET, EXTRA_KEY):
        assert secret not in out + err


def test_check_config_hides_a_zapikey_read_from_a_file(
    broker_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    secret_file = tmp_path / "zapikey.txt"
    secret_file.write_text(ZAPIKEY + "\n")
    # cli moves the file's content into BROKER_PLATFORM__ZAPIKEY: make monkeypatch undo that too.
    broker_env.setenv("BROKER_PLATFORM__ZAPIKEY", "placeholder")
    broker_env.delenv("BROKER_PLATFORM__ZAPIKEY")
    broker_env.setenv("BROKER_PLATFORM__ZAPIKEY_FILE", str(secret_file))
    assert cli.main(["check-config"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["platform"]["zapikey"] == "***"
    assert ZAPIKEY not in out + err


def test_check_config_refusing_a_bad_secret_names_the_setting_but_not_the_value(
    broker_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    too_long = "x-signing-secret-" + "y" * 60  # Zoho allows 12 to 50 characters
    broker_env.setenv("BROKER_PLATFORM__ZAPIKEY", ZAPIKEY)
    broker_env.setenv("BROKER_WEBHOOKS__SIGNING_SECRET", too_long)
    assert cli.main(["check-config"]) == cli.EXIT_CONFIG
    out, err = capsys.readouterr()
    assert "webhooks.signing_secret" in err
    assert "BROKER_WEBHOOKS__SIGNING_SECRET" in err
    assert too_long not in out + err
    assert ZAPIKEY not in out + err
