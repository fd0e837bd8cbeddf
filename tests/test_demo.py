"""``broker demo`` signs its landing links: the printed links open the page (once), the minting
command works, and the link secret is kept in a private file, never printed."""

from __future__ import annotations

import re
import shlex
import stat
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient, TestServer

from broker.cli import main
from broker.config import LandingVerification
from broker.simulators.demo import DEMO_ORGS, DemoSecrets, demo_settings, instructions
from broker.web.app import create_app
from broker.web.appkeys import store_key

LINK = re.compile(r"http://127\.0\.0\.1:21000/manage\?\S+")


def printed(tmp_path: Path, secrets: DemoSecrets, verify: LandingVerification) -> str:
    return instructions("127.0.0.1", 21000, 21001, 21002, tmp_path, secrets, verify=verify)


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
            lambda db: [r["zgid"] for r in db.query("SELECT zgid FROM users ORDER BY zgid")]
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
