"""``broker demo`` signs its landing links: the printed links open the page (once), the minting
command works, and the link secret is kept in a private file, never printed. Its story is
consistent: the sample webhook is one the simulated billing really sent (and dropped), it gives
the second org its one subscription, the printed failure switches work, and ``--reset`` removes
only what the demo made."""

from __future__ import annotations

import json
import re
import shlex
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.app import create_app
from broker.cli import main
from broker.config import LandingVerification
from broker.simulators.demo import DemoSecrets, demo_settings, instructions, notes
from broker.simulators.demo_world import DEMO_ORGS, billing_simulator, reset_data_dir, seed_story
from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import store_key

ServerFactory = Callable[..., Awaitable[TestServer]]
ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
LINK = re.compile(r"http://127\.0\.0\.1:21000/manage\?\S+")


def printed(tmp_path: Path, secrets: DemoSecrets, verify: LandingVerification) -> str:
    return instructions(
        "127.0.0.1", 21000, 21001, 21002, tmp_path, secrets, sample=b"{}", verify=verify
    )


async def test_demo_prints_a_signed_link_per_org_that_opens_the_page_once(tmp_path: Path):
    secrets = DemoSecrets()
    text = printed(tmp_path, secrets, LandingVerification.SIGNED)
    assert secrets.link_secret not in text
    assert secrets.zapikey not in text
    secret_file = tmp_path / "link-secret"
    assert secret_file.read_text().strip() == secrets.link_secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    links = LINK.findall(text)
    assert len(links) == len(DEMO_ORGS) == 2
    assert all("&sig=" in link and "&nonce=" in link for link in links)
    settings = demo_settings("127.0.0.1", 21000, 21001, 21002, tmp_path, secrets)
    async with TestClient(TestServer(create_app(settings))) as client:
        for link in links:
            path = urlsplit(link)._replace(scheme="", netloc="").geturl()
            first = await client.get(path, allow_redirects=False)
            assert first.status == 303, await first.text()
            again = await client.get(path, allow_redirects=False)
            assert again.status == 403
        users = await client.app[store_key].read(
            lambda db: [r["zgid"] for r in db.select_all("SELECT zgid FROM users ORDER BY zgid")]
        )
        assert users == sorted(user.zgid for user in DEMO_ORGS)


def test_demo_prints_the_command_that_mints_another_link(tmp_path: Path, capsys):
    secrets = DemoSecrets()
    text = printed(tmp_path, secrets, LandingVerification.SIGNED)
    [command] = [line.strip() for line in text.splitlines() if "broker sign-link" in line]
    argv = shlex.split(command)
    assert argv[:2] == ["broker", "sign-link"]
    assert main(argv[1:]) == 0
    minted = capsys.readouterr().out.strip()
    assert LINK.fullmatch(minted)
    assert f"zgid={DEMO_ORGS[0].zgid}" in minted
    assert secrets.link_secret not in minted


def test_demo_with_verify_none_prints_unsigned_links_and_no_secret_file(tmp_path: Path):
    secrets = DemoSecrets()
    text = printed(tmp_path, secrets, LandingVerification.NONE)
    links = LINK.findall(text)
    assert len(links) == 2
    assert all("sig=" not in link for link in links)
    assert 'verify = "none"' in text
    assert not (tmp_path / "link-secret").exists()
    settings = demo_settings(
        "127.0.0.1", 21000, 21001, 21002, tmp_path, secrets, verify=LandingVerification.NONE
    )
    assert settings.landing.verification is LandingVerification.NONE


async def test_sample_webhook_is_the_one_billing_dropped_and_adds_the_second_org_once(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    secrets = DemoSecrets()
    billing = billing_simulator("127.0.0.1", 21000, secrets)
    sample = seed_story(billing)
    platform = PlatformSimulator(secrets.zapikey)
    billing_server = await aiohttp_server(billing.app())
    platform_server = await aiohttp_server(platform.app())
    settings = demo_settings(
        "127.0.0.1", 21000, platform_server.port, billing_server.port, tmp_path, secrets
    )
    broker = await aiohttp_client(create_app(settings))

    posted = await broker.post(
        "/webhooks/billing",
        data=sample,
        headers={"zapikey": secrets.zapikey, "Content-Type": "application/json"},
    )
    await platform.wait_until(lambda s: len(s.applied) == 1)

    second = DEMO_ORGS[1]
    [sub] = billing.subscriptions.values()
    assert json.loads(sample)["data"]["subscription"]["subscription_id"] == sub.subscription_id
    assert [d.state for d in billing.webhook_deliveries] == ["dropped", "dropped"]
    assert sub.customer.field_value("cf_zgid") == second.zgid
    assert posted.status == 200, await posted.text()
    call = platform.applied[0]
    assert (call.method, call.zgid) == ("POST", second.zgid)
    assert call.body["subscription_id"] == sub.subscription_id
    assert (call.body["no_of_users"], call.body["storage_units"]) == ("5", "2")
    first_org_subs = [
        s
        for s in billing.subscriptions.values()
        if s.customer.field_value("cf_zgid") == DEMO_ORGS[0].zgid
    ]
    assert first_org_subs == []  # step 1 sells the first org its only subscription


SWITCH = re.compile(r"POST -H 'Content-Type: application/json'(?: -d '(\{.*?\})')? \S+:21002(\S+)")


async def test_printed_failure_switches_work_against_the_simulated_billing(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    billing = billing_simulator("127.0.0.1", 21000, DemoSecrets())
    client = await aiohttp_client(billing.app())
    text = notes("127.0.0.1", 21002, tmp_path, earlier_run=False)
    switches = SWITCH.findall(text)

    answers = [
        (path, (await client.post(path, data=body or None)).status) for body, path in switches
    ]

    assert [path for path, _ in answers] == [
        "/_sim/faults",
        "/_sim/expire_hosted_pages",
        "/_sim/webhooks",
        "/_sim/faults",
        "/_sim/today",
    ]
    assert all(status == 200 for _, status in answers)
    assert billing.faults.down is True
    assert billing.faults.per_minute == 5
    assert billing.today.isoformat() == "2031-01-01"
    assert "broker demo --reset" in text
    assert "persists between runs" in text
    assert "earlier run" in notes("127.0.0.1", 21002, tmp_path, earlier_run=True)


def test_reset_removes_only_the_files_the_demo_made(tmp_path: Path) -> None:
    for name in ("broker.db", "broker.db-wal", "link-secret", "zapikey.header", "notes.txt"):
        (tmp_path / name).write_text("x")

    said = reset_data_dir(tmp_path)
    again = reset_data_dir(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert said == (
        f"--reset: removed broker.db, broker.db-wal, zapikey.header, link-secret from {tmp_path}"
        "; other files were left alone: notes.txt"
    )
    assert again == f"--reset: nothing to remove in {tmp_path}"


async def test_demo_on_postgresql_keeps_its_state_there(tmp_path: Path, postgres_url: str):
    """``broker demo --store postgresql://...``: the same links work, and the orgs they sign in
    land in PostgreSQL, not in a file under the data directory."""
    secrets = DemoSecrets()
    text = instructions(
        "127.0.0.1", 21000, 21001, 21002, tmp_path, secrets, sample=b"{}", database="pg-shown"
    )
    assert "(database: pg-shown)" in text
    links = LINK.findall(text)
    settings = demo_settings(
        "127.0.0.1", 21000, 21001, 21002, tmp_path, secrets, store_url=postgres_url
    )
    assert settings.store.postgres_url == postgres_url
    async with TestClient(TestServer(create_app(settings))) as client:
        for link in links:
            path = urlsplit(link)._replace(scheme="", netloc="").geturl()
            assert (await client.get(path, allow_redirects=False)).status == 303
    with psycopg.connect(postgres_url) as conn:
        zgids = [r[0] for r in conn.execute("SELECT zgid FROM users ORDER BY zgid")]
    assert zgids == sorted(user.zgid for user in DEMO_ORGS)
    assert not (tmp_path / "broker.db").exists()


def test_demo_store_must_be_postgresql(tmp_path: Path, capsys):
    code = main(["demo", "--store", "sqlite:///x.db", "--data-dir", str(tmp_path / "d")])
    assert code == 2
    assert "--store takes a postgresql:// URL" in capsys.readouterr().err
