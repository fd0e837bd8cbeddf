"""One version, shown the same way everywhere: the command line, the console and the metrics agree
with the newest release in the changelog and with the installed distribution's metadata."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerFactory
from tests.support.ops import OPS, sign_in

CHANGELOG = Path(__file__).resolve().parents[2] / "docs" / "CHANGELOG.md"


def newest_release() -> str:
    """The first ``## [x.y.z] - date`` heading of the changelog (Keep a Changelog form)."""
    match = re.search(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", CHANGELOG.read_text(), re.M)
    assert match, "docs/CHANGELOG.md has no release heading"
    return match.group(1)


def test_the_installed_distribution_carries_the_newest_changelog_release() -> None:
    assert importlib.metadata.version("zoho-subscription-broker") == newest_release()


def test_broker_version_prints_the_release() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "broker", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"broker {newest_release()}"


async def test_metrics_carry_build_info_with_the_release(make_broker: BrokerFactory) -> None:
    client = await make_broker()
    text = await (await client.get("/metrics")).text()
    line = next(line for line in text.splitlines() if line.startswith("broker_build_info{"))
    assert f'version="{newest_release()}"' in line
    assert line.endswith(" 1.0")


async def test_the_console_header_shows_the_release(make_broker: BrokerFactory) -> None:
    client = await make_broker(ops=OPS)
    await sign_in(client)
    page = await (await client.get("/ops")).text()
    assert f"v{newest_release()}" in page


@pytest.fixture
def changelog_text() -> str:
    return CHANGELOG.read_text()


def test_the_changelog_lists_releases_newest_first(changelog_text: str) -> None:
    versions = re.findall(r"^## \[(\d+)\.(\d+)\.(\d+)\]", changelog_text, re.M)
    as_tuples = [tuple(int(part) for part in version) for version in versions]
    assert len(as_tuples) >= 2
    assert as_tuples == sorted(as_tuples, reverse=True)
