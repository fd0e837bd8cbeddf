"""The operator's side of landing verification: check-config and start-up say when the page is
unsafe or refusing, and ``broker sign-link`` mints links the broker accepts, never printing the
secret."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from structlog.testing import capture_logs

from broker.cli import main
from broker.core.link_signing import verify_link
from tests.support.basics import LINK_SECRET

NOT_CONFIGURED = "no landing verification is configured"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("BROKER_") or name == "PORT":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", "operator-zapikey-not-for-printing")
    before = dict(os.environ)
    yield
    for name in set(os.environ) - set(before):
        del os.environ[name]
    os.environ.update(before)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_config_warns_when_no_verification_is_configured(capsys):
    code, _, err = run(capsys, "check-config")
    assert code == 0
    assert f"warning: {NOT_CONFIGURED}" in err
    assert "BROKER_LANDING__LINK_SECRET" in err
    assert "BROKER_LANDING__VERIFY" in err


def test_check_config_warns_loudly_about_none(capsys, monkeypatch):
    monkeypatch.setenv("BROKER_LANDING__VERIFY", "none")
    code, _, err = run(capsys, "check-config")
    assert code == 0
    assert 'warning: landing.verify = "none"' in err
    assert "believes whatever ids the browser sends" in err


def test_check_config_is_quiet_with_a_link_secret(capsys, monkeypatch):
    monkeypatch.setenv("BROKER_LANDING__LINK_SECRET", LINK_SECRET)
    monkeypatch.setenv("BROKER_LANDING__SESSION_SECRET", "session-secret-0123456789")  # warned too
    monkeypatch.setenv("BROKER_PLATFORM__PRODUCT_ID", "2077000000010001")  # warned too
    monkeypatch.setenv("BROKER_PLANS__PAUSE_POLICY", "keep")  # an unchosen policy is warned too
    code, out, err = run(capsys, "check-config")
    assert code == 0
    assert "warning" not in err
    assert LINK_SECRET not in out + err


def test_check_config_refuses_verify_signed_without_a_secret(capsys, monkeypatch):
    monkeypatch.setenv("BROKER_LANDING__VERIFY", "signed")
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "BROKER_LANDING__LINK_SECRET" in err


async def test_startup_logs_the_missing_verification(make_broker):
    with capture_logs() as logs:
        await make_broker(landing={"link_secret": None})
    [entry] = [e for e in logs if e["event"] == "landing.verification"]
    assert (entry["log_level"], entry["mode"]) == ("warning", "unset")
    assert NOT_CONFIGURED in entry["message"]


async def test_startup_logs_none_as_a_warning(make_broker):
    with capture_logs() as logs:
        await make_broker(landing={"verify": "none"})
    [entry] = [e for e in logs if e["event"] == "landing.verification"]
    assert (entry["log_level"], entry["mode"]) == ("warning", "none")


def minted(out: str) -> tuple[str, list[tuple[str, str]]]:
    url = urlsplit(out.strip())
    return f"{url.scheme}://{url.netloc}{url.path}", parse_qsl(url.query, keep_blank_values=True)


def test_sign_link_mints_a_link_the_broker_accepts(capsys, tmp_path: Path):
    secret_file = tmp_path / "link-secret"
    secret_file.write_text(LINK_SECRET + "\n")
    code, out, err = run(
        capsys,
        "sign-link",
        "--secret-file",
        str(secret_file),
        "--url",
        "http://127.0.0.1:21000/manage",
        "zuid=600000001",
        "zgid=700000001",
        "display_name=Ana & Co",
    )
    assert code == 0, err
    assert LINK_SECRET not in out + err
    base, pairs = minted(out)
    assert base == "http://127.0.0.1:21000/manage"
    link = verify_link(pairs, secret=LINK_SECRET, now=time.time(), tolerance_seconds=60)
    assert link.params["display_name"] == "Ana & Co"
    assert (link.params["zuid"], link.params["zgid"]) == ("600000001", "700000001")
    _, again = minted(run(capsys, "sign-link", "--secret-file", str(secret_file), "zuid=1")[1])
    assert dict(again)["nonce"] != link.nonce  # a fresh nonce every time


def test_sign_link_reads_the_secret_from_settings(capsys, monkeypatch):
    monkeypatch.setenv("BROKER_LANDING__LINK_SECRET", LINK_SECRET)
    monkeypatch.setenv("BROKER_LANDING__PUBLIC_URL", "https://broker.example")
    code, out, _ = run(capsys, "sign-link", "zuid=1", "zgid=2")
    assert code == 0
    base, pairs = minted(out)
    assert base == "https://broker.example/manage"
    verify_link(pairs, secret=LINK_SECRET, now=time.time(), tolerance_seconds=60)


@pytest.mark.parametrize("argument", ["zuid", "sig=abc", "ts=1", "nonce=x"])
def test_sign_link_refuses_what_it_must_add_itself(capsys, argument: str):
    code, out, err = run(capsys, "sign-link", argument)
    assert code == 2
    assert out == ""
    assert "sign-link:" in err


def test_sign_link_without_a_secret_says_what_to_set(capsys):
    code, _, err = run(capsys, "sign-link", "zuid=1")
    assert code == 2
    assert "BROKER_LANDING__LINK_SECRET" in err
