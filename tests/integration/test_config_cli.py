"""Configuration and the ``broker`` command: what an operator types, and what they are told.

Every test calls ``broker.cli.main`` in-process with a clean environment (no BROKER_* or PORT from
the host), except the one that proves ``python -m broker`` runs at all.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel, SecretStr

from broker.cli import main
from broker.config import Settings, StoreSettings, config_file, load_settings
from broker.simulators.platform import PlatformSimulator
from tests.conftest import post_event
from tests.support.basics import eventually, subscription_event

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "broker.example.toml"
POSTGRESQL_CONFIG = REPO / "config" / "broker.postgresql.toml"
SECRET = "operator-zapikey-not-for-printing"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No BROKER_* or PORT from the host; undo what the CLI itself writes into os.environ."""
    for name in list(os.environ):
        if name.upper().startswith("BROKER_") or name == "PORT":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    before = dict(os.environ)
    yield
    for name in set(os.environ) - set(before):
        del os.environ[name]
    os.environ.update(before)


@pytest.fixture
def required_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def checked(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """Run check-config expecting success; return the printed settings."""
    code, out, err = run(capsys, *argv, "check-config")
    assert code == 0, err
    assert "configuration OK" in err
    settings: dict[str, Any] = json.loads(out)
    return settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- check-config -----------------------------------------------------------------------------


@pytest.mark.usefixtures("required_env")
def test_check_config_prints_settings_with_secrets_hidden(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_WEBHOOKS__EXTRA_ZAPIKEYS", '["second-key-also-secret"]')
    monkeypatch.setenv("BROKER_WEBHOOKS__SIGNING_SECRET", "signing-secret-hidden")
    code, out, err = run(capsys, "check-config")
    assert code == 0, err
    settings = json.loads(out)
    platform = settings["platform"]
    assert platform["app_domain"] == "envapp"
    assert platform["zapikey"] == "***"
    assert platform["base_url"] is None  # printed as configured; the client resolves it later
    assert settings["webhooks"]["extra_zapikeys"] == ["***"]
    assert settings["webhooks"]["signing_secret"] == "***"
    assert settings["server"] == {
        "host": "127.0.0.1",
        "port": 8080,
        "max_body_bytes": 1048576,
        "body_timeout_seconds": 30.0,
        "behind_tls_proxy": False,
    }
    assert settings["landing"]["require_email_match"] is True
    assert settings["landing"]["link_secret"] is None  # signed links are opt-in
    assert settings["landing"]["members_can_manage"] is False
    for secret in (SECRET, "second-key-also-secret", "signing-secret-hidden"):
        assert secret not in out + err


@pytest.mark.usefixtures("required_env")
def test_check_config_hides_billing_api_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_BILLING__ORGANIZATION_ID", "20000001")
    monkeypatch.setenv("BROKER_BILLING__CLIENT_ID", "1000.CLIENT")
    monkeypatch.setenv("BROKER_BILLING__CLIENT_SECRET", "billing-client-secret")
    monkeypatch.setenv("BROKER_BILLING__REFRESH_TOKEN", "billing-refresh-token")
    code, out, err = run(capsys, "check-config")
    assert code == 0, err
    billing = json.loads(out)["billing"]
    assert billing["organization_id"] == "20000001"
    assert (billing["client_secret"], billing["refresh_token"]) == ("***", "***")
    assert "billing-client-secret" not in out + err
    assert "billing-refresh-token" not in out + err


def test_missing_zapikey_names_the_setting_and_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    code, out, err = run(capsys, "check-config")
    assert code == 2
    assert out == ""
    assert "platform.zapikey" in err
    assert "BROKER_PLATFORM__ZAPIKEY" in err


@pytest.mark.usefixtures("required_env")
def test_invalid_port_names_server_port(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_SERVER__PORT", "99999")
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "server.port" in err
    assert "BROKER_SERVER__PORT" in err


@pytest.mark.usefixtures("required_env")
@pytest.mark.parametrize("url", ["ftp://x", "yourapp.zohoplatform.com"])
def test_non_http_base_url_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
):
    monkeypatch.setenv("BROKER_PLATFORM__BASE_URL", url)
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "platform.base_url" in err
    assert "http://" in err


@pytest.mark.usefixtures("required_env")
def test_base_url_trailing_slash_is_dropped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_PLATFORM__BASE_URL", "https://sim.example/")
    assert checked(capsys)["platform"]["base_url"] == "https://sim.example"


@pytest.mark.usefixtures("required_env")
@pytest.mark.parametrize("secret", ["short-11chr", "s" * 51])
def test_signing_secret_outside_zoho_length_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, secret: str
):
    monkeypatch.setenv("BROKER_WEBHOOKS__SIGNING_SECRET", secret)
    code, out, err = run(capsys, "check-config")
    assert code == 2
    assert "webhooks.signing_secret" in err
    assert "12 to 50" in err
    assert secret not in out + err


@pytest.mark.usefixtures("required_env")
@pytest.mark.parametrize("lease", ["15", "5"])
def test_lease_not_longer_than_request_timeout_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lease: str
):
    monkeypatch.setenv("BROKER_PLATFORM__REQUEST_TIMEOUT_SECONDS", "15")
    monkeypatch.setenv("BROKER_DELIVERY__LEASE_SECONDS", lease)
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "delivery.lease_seconds must exceed platform.request_timeout_seconds" in err
    assert "sent twice" in err


@pytest.mark.usefixtures("required_env")
def test_port_variable_is_honoured_when_broker_port_is_unset(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PORT", "9999")
    assert checked(capsys)["server"]["port"] == 9999


@pytest.mark.usefixtures("required_env")
def test_broker_port_beats_port_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("BROKER_SERVER__PORT", "7001")
    assert checked(capsys)["server"]["port"] == 7001


REQUIRED = {"BROKER_PLATFORM__APP_DOMAIN": "testapp", "BROKER_PLATFORM__ZAPIKEY": "k" * 20}


def test_settings_resolution_reads_port_and_never_writes_the_environment_it_is_given(
    tmp_path: Path,
):
    """PORT and _FILE are resolved by config itself, into a copy of what it was given."""
    zapikey = tmp_path / "zapikey"
    zapikey.write_text("from-a-file-0123456789\n")
    environ = {
        "BROKER_PLATFORM__APP_DOMAIN": "testapp",
        "BROKER_PLATFORM__ZAPIKEY_FILE": str(zapikey),
        "PORT": "9999",
    }
    before = dict(environ)
    settings = load_settings(None, environ)
    assert settings.server.port == 9999
    assert settings.platform.zapikey.get_secret_value() == "from-a-file-0123456789"
    assert environ == before
    explicit = load_settings(None, {**REQUIRED, "PORT": "9999", "BROKER_SERVER__PORT": "7001"})
    assert explicit.server.port == 7001


def test_config_file_is_the_option_then_broker_config_then_none(tmp_path: Path):
    given, named = tmp_path / "given.toml", tmp_path / "named.toml"
    assert config_file(given, {"BROKER_CONFIG": str(named)}) == given
    assert config_file(None, {"BROKER_CONFIG": str(named)}) == named
    assert config_file(None, {"BROKER_CONFIG": ""}) is None
    assert config_file(None, {}) is None


@pytest.mark.usefixtures("required_env")
def test_unknown_nested_env_key_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKY", "typo")
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "platform.zapiky: unknown setting" in err


@pytest.mark.usefixtures("required_env")
def test_misspelt_env_section_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKER_SERVR__PORT", "7001")
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "BROKER_SERVR__PORT" in err


# --- the TOML file ----------------------------------------------------------------------------

CONFIG_TOML = """
[server]
port = 7000
host = "0.0.0.0"

[platform]
app_domain = "fileapp"
request_timeout_seconds = 3.5

[plans]
storage_addon_monthly = "fileapp_storage"

[plans.addon_pricing_keys]
fileapp_admin = "SuperAdminLicense"
"""


def test_config_file_supplies_settings_and_env_wins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    config = write(tmp_path / "broker.toml", CONFIG_TOML)
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    monkeypatch.setenv("BROKER_SERVER__PORT", "7100")
    settings = checked(capsys, "--config", str(config))
    assert settings["server"]["port"] == 7100  # env beats the file
    assert settings["server"]["host"] == "0.0.0.0"  # noqa: S104 - the file's value, read back
    assert settings["platform"]["app_domain"] == "fileapp"
    assert settings["platform"]["request_timeout_seconds"] == 3.5
    assert settings["plans"]["storage_addon_monthly"] == "fileapp_storage"
    assert settings["plans"]["addon_pricing_keys"] == {"fileapp_admin": "SuperAdminLicense"}


def test_broker_config_variable_names_the_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    config = write(tmp_path / "broker.toml", CONFIG_TOML)
    monkeypatch.setenv("BROKER_CONFIG", str(config))
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    settings = checked(capsys)
    assert settings["server"]["port"] == 7000
    assert settings["platform"]["app_domain"] == "envapp"


def test_config_flag_beats_broker_config_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    config = write(tmp_path / "broker.toml", CONFIG_TOML)
    other = write(tmp_path / "other.toml", '[platform]\napp_domain = "otherapp"\n')
    monkeypatch.setenv("BROKER_CONFIG", str(config))
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    settings = checked(capsys, "--config", str(other))
    assert settings["platform"]["app_domain"] == "otherapp"
    assert settings["server"]["port"] == 8080


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('[platform]\napp_domain = "x"\nzapikye = "typo"\n', "platform.zapikye"),
        ('[platform]\napp_domain = "x"\n[servr]\nport = 1\n', "servr"),
        ('[platform]\napp_domain = "x"\n[server]\nprot = 1\n', "server.prot"),
        ('top_level = 1\n[platform]\napp_domain = "x"\n', "top_level"),
    ],
)
def test_unknown_toml_key_is_refused_by_name(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: str,
    named: str,
):
    config = write(tmp_path / "broker.toml", extra)
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    code, out, err = run(capsys, "--config", str(config), "check-config")
    assert code == 2
    assert out == ""
    assert f"{named}: unknown setting" in err


def test_invalid_toml_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    config = write(tmp_path / "broker.toml", "[platform\napp_domain = = 'x'\n")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    code, out, err = run(capsys, "--config", str(config), "check-config")
    assert code == 2
    assert out == ""
    assert "configuration error" in err
    assert "line 1" in err


def test_invalid_toml_message_says_the_file_is_not_toml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    config = write(tmp_path / "broker.toml", "[platform\napp_domain = = 'x'\n")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    code, _, err = run(capsys, "--config", str(config), "check-config")
    assert code == 2
    assert "not valid TOML" in err


@pytest.mark.usefixtures("required_env")
def test_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    missing = tmp_path / "nowhere.toml"
    code, _, err = run(capsys, "--config", str(missing), "check-config")
    assert code == 2
    assert "config file not found" in err
    assert str(missing) in err


@pytest.mark.usefixtures("required_env")
def test_missing_broker_config_file_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("BROKER_CONFIG", str(tmp_path / "nowhere.toml"))
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "nowhere.toml" in err


# --- secrets from files -----------------------------------------------------------------------


def test_file_variable_supplies_the_zapikey(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    secret_file = write(tmp_path / "zapikey", f"{SECRET}\n")
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY_FILE", str(secret_file))
    code, out, err = run(capsys, "check-config")
    assert code == 0, err
    assert json.loads(out)["platform"]["zapikey"] == "***"
    assert SECRET not in out + err


def test_file_value_loses_its_trailing_newline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """Shown on a non-secret key, whose value check-config prints."""
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    monkeypatch.setenv(
        "BROKER_PLATFORM__APP_DOMAIN_FILE", str(write(tmp_path / "domain", "fileapp\n"))
    )
    monkeypatch.setenv(
        "BROKER_STORE__PATH_FILE", str(write(tmp_path / "store", "/var/lib/broker/db\n"))
    )
    settings = checked(capsys)
    assert settings["platform"]["app_domain"] == "fileapp"
    assert settings["store"]["path"] == "/var/lib/broker/db"


def test_file_variable_pointing_nowhere_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY_FILE", str(tmp_path / "absent"))
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "BROKER_PLATFORM__ZAPIKEY_FILE" in err
    assert "absent" in err


def test_blank_secret_file_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY_FILE", str(write(tmp_path / "blank", "\n")))
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "platform.zapikey" in err


# --- serve, help ------------------------------------------------------------------------------


def test_serve_with_bad_config_exits_2_without_starting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    code, _, err = run(capsys, "serve")
    assert code == 2
    assert "platform.zapikey" in err
    assert not (tmp_path / "broker.db").exists()  # the store never opened


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys)
    assert code == 2
    assert "usage: broker" in out
    for command in ("serve", "check-config", "backup", "deliveries"):
        assert command in out


def test_python_m_broker_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "broker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: broker" in result.stdout
    assert "check-config" in result.stdout


# --- backup -----------------------------------------------------------------------------------


async def live_database(make_broker: Any, simulator: PlatformSimulator, tmp_path: Path) -> Path:
    """A real store: the broker received one event and delivered it."""
    client = await make_broker()
    event = subscription_event(event_id="backup-event-1")
    assert (await post_event(client, event)).status == 200
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    db = tmp_path / "broker.db"

    def delivered() -> bool:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT state FROM deliveries").fetchone()
        return row is not None and row[0] == "done"

    await eventually(delivered, message="delivery done")
    return db


async def test_backup_copies_the_live_database(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    db = await live_database(make_broker, simulator, tmp_path)
    destination = tmp_path / "backups" / "copy.db"
    code, out, err = run(capsys, "backup", str(destination), "--db", str(db))
    assert code == 0, err
    assert str(destination) in out
    with sqlite3.connect(destination) as copy:
        events = copy.execute("SELECT event_id, outcome FROM webhook_events").fetchall()
        deliveries = copy.execute("SELECT state FROM deliveries").fetchall()
    assert events == [("backup-event-1", "queued")]
    assert deliveries == [("done",)]


async def test_backup_finds_the_database_from_settings(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    db = await live_database(make_broker, simulator, tmp_path)
    monkeypatch.setenv("BROKER_STORE__PATH", str(db))
    destination = tmp_path / "copy.db"
    code, _, err = run(capsys, "backup", str(destination))
    assert code == 0, err
    with sqlite3.connect(destination) as copy:
        assert copy.execute("SELECT count(*) FROM webhook_events").fetchone() == (1,)


async def test_backup_refuses_to_overwrite_a_file(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    db = await live_database(make_broker, simulator, tmp_path)
    destination = write(tmp_path / "precious.db", "keep me")
    code, _, err = run(capsys, "backup", str(destination), "--db", str(db))
    assert code == 1
    assert "exists" in err
    assert destination.read_text() == "keep me"


def test_backup_without_a_database_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    destination = tmp_path / "copy.db"
    code, _, err = run(capsys, "backup", str(destination), "--db", str(tmp_path / "none.db"))
    assert code == 1
    assert "no database" in err
    assert not destination.exists()


# --- the operator's database commands: the database is all they need ------------------------


def listed(capsys: pytest.CaptureFixture[str], *argv: str) -> list[tuple[str, str, str]]:
    """Run ``broker ... deliveries list --json``: (subscription, action, state) of each row."""
    capsys.readouterr()  # what the broker logged while it made the database
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    return [(row["subscription_id"], row["action"], row["state"]) for row in rows]


THE_DELIVERY = [("100000000000000001", "add", "done")]  # live_database's one event, delivered


async def test_deliveries_list_with_db_needs_no_settings(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    """No zapikey, no config file, no BROKER_* at all: --db is enough."""
    db = await live_database(make_broker, simulator, tmp_path)
    assert listed(capsys, "deliveries", "--db", str(db), "list") == THE_DELIVERY


@pytest.mark.parametrize("how", ["--config", "BROKER_CONFIG"])
async def test_deliveries_list_finds_the_database_in_a_config_file_that_is_incomplete(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
):
    """The file names only [store] path: the platform settings it lacks would stop `serve`,
    but not the operator reading the outbox."""
    db = await live_database(make_broker, simulator, tmp_path)
    config = write(tmp_path / "ops.toml", f'[store]\npath = "{db}"\n')
    if how == "--config":
        assert listed(capsys, "--config", str(config), "deliveries", "list") == THE_DELIVERY
    else:
        monkeypatch.setenv("BROKER_CONFIG", str(config))
        assert listed(capsys, "deliveries", "list") == THE_DELIVERY


async def test_deliveries_list_without_db_or_settings_reads_broker_db_here(
    make_broker: Any,
    simulator: PlatformSimulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    await live_database(make_broker, simulator, tmp_path)  # tmp_path / "broker.db"
    monkeypatch.chdir(tmp_path)
    assert listed(capsys, "deliveries", "list") == THE_DELIVERY


def test_deliveries_list_without_a_database_says_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["deliveries", "list"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "no database at broker.db: pass --db or set BROKER_STORE__PATH\n"
    )


# --- the example configuration ----------------------------------------------------------------


def setting_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every field of every section, as (section, key) paths."""
    for name, field in model.model_fields.items():
        # An optional section (``BillingSettings | None``) is still a section.
        candidates = get_args(field.annotation) or (field.annotation,)
        sections = [t for t in candidates if isinstance(t, type) and issubclass(t, BaseModel)]
        if sections:
            yield from setting_keys(sections[0], (*prefix, name))
        else:
            yield (*prefix, name)


_HEADER = re.compile(r"^\s*#?\s*\[([A-Za-z0-9_.]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*#?\s*([A-Za-z0-9_]+)\s*=")


def mentioned_keys(text: str) -> set[tuple[str, ...]]:
    """Keys set or shown commented-out (``# key = ...``) under their ``[section]``."""
    found: set[tuple[str, ...]] = set()
    section: tuple[str, ...] = ()
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            section = tuple(header.group(1).split("."))
            found.update(section[:i] for i in range(1, len(section) + 1))
            continue
        key = _KEY.match(line)
        if key and section:
            found.add((*section, key.group(1)))
    return found


def example_config() -> Path:
    """The shipped example; its absence is a failure, not a reason to skip."""
    assert EXAMPLE_CONFIG.is_file(), f"{EXAMPLE_CONFIG.relative_to(REPO)} is missing"
    return EXAMPLE_CONFIG


def test_example_config_loads_with_secrets_from_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    example = example_config()
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", SECRET)
    settings = checked(capsys, "--config", str(example))
    assert settings["platform"]["zapikey"] == "***"


def test_example_config_mentions_every_setting():
    text = example_config().read_text()
    expected = set(setting_keys(Settings))
    assert len(expected) > 20  # the walk found the sections' fields, not just the sections
    missing = sorted(".".join(key) for key in expected - mentioned_keys(text))
    assert missing == [], f"config/broker.example.toml does not mention: {missing}"


def test_postgresql_example_sets_only_documented_settings_and_no_password():
    text = POSTGRESQL_CONFIG.read_text()
    extra = mentioned_keys(text) - mentioned_keys(example_config().read_text())
    assert extra == set(), "every key is in broker.example.toml, with its default"
    url = tomllib.loads(text)["store"]["url"]
    assert urlsplit(url).scheme == "postgresql"
    assert urlsplit(url).username == "broker"
    assert urlsplit(url).password is None


@pytest.mark.skipif(
    "url" not in StoreSettings.model_fields,
    reason="store.url arrives with the PostgreSQL backend",
)
def test_postgresql_example_loads_with_secrets_from_env():
    settings = load_settings(POSTGRESQL_CONFIG, {"BROKER_PLATFORM__ZAPIKEY": SECRET})
    store: Any = settings.store
    url = store.url.get_secret_value() if isinstance(store.url, SecretStr) else str(store.url)
    assert url.startswith("postgresql://broker@db.internal:5432/broker?")
    assert store.pool_size == 10
