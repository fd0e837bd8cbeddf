"""``broker events replay``: one stored event or a range with human dates, through the same
pipeline as the console's replay, audited as ``cli:<user>``; a running broker sends what it
queued. Wrong arguments get a clear message and exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import APP_DOMAIN, ZAPIKEY, ZGID, eventually, subscription_event
from tests.support.cli import run_cli
from tests.support.ops import audit_rows, delivery_ids, wait_for_state

SID = "100000000000000001"
TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What ``load_settings`` needs, as the environment gives it to the command."""
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", APP_DOMAIN)
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", ZAPIKEY)
    monkeypatch.setenv("BROKER_STORE__PATH", str(tmp_path / "broker.db"))
    return tmp_path / "broker.db"


@pytest.fixture
def store_env(
    settings_env: Path,
    store_url: str,
    make_broker: BrokerFactory,  # after the database, so the broker stops before it is dropped
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """The same, with the store as a URL: each test once on SQLite, once on PostgreSQL."""
    monkeypatch.setenv("BROKER_STORE__URL", store_url)
    return store_url


async def test_replaying_one_event_queues_its_state_again_and_is_audited(
    make_broker: BrokerFactory, simulator: PlatformSimulator, store_env: str, capsys
):
    client = await make_broker(store={"url": store_env})
    simulator.fail_next(1, status=400)
    event = subscription_event(subscription_id=SID, event_id="9401", quantity=6)
    assert (await post_event(client, event)).status == 200
    await eventually(lambda: delivery_ids(client, SID), message="queued")
    (dead,) = await delivery_ids(client, SID)
    await wait_for_state(client, dead, "dead")

    code, out, err = run_cli(capsys, "events", "replay", "9401")

    assert code == 0, err
    assert "9401  queued" in out
    assert "replayed 1 events: queued 1" in out
    ids = await delivery_ids(client, SID)
    assert len(ids) == 2
    await wait_for_state(client, ids[1], "done")  # the running broker sent it
    assert simulator.subscriptions[ZGID].no_of_users == "6"
    (audited,) = await audit_rows(client, "ops.replay")
    assert audited["zuid"].startswith("ops:cli:")
    assert json.loads(audited["detail"])["event_id"] == "9401"


async def test_replaying_a_range_with_human_dates(
    make_broker: BrokerFactory, simulator: PlatformSimulator, store_env: str, capsys
):
    client = await make_broker(store={"url": store_env})
    for n in (1, 2):
        event = subscription_event(subscription_id=SID, event_id=f"950{n}", quantity=n + 1)
        assert (await post_event(client, event)).status == 200
    await eventually(lambda: SID in {s.subscription_id for s in simulator.subscriptions.values()})

    code, out, err = run_cli(capsys, "events", "replay", "--from", TODAY, "--to", TODAY)

    assert code == 0, err
    # Oldest first: the first is older than what is stored, the second is the stored state.
    assert out.splitlines()[0].startswith("9501  stale")
    assert out.splitlines()[1].startswith("9502  queued")
    assert [r["result"] for r in await audit_rows(client, "ops.replay")] == ["stale", "queued"]
    code, out, _ = run_cli(capsys, "events", "replay", "--from", "2001-01-01", "--to", "2001-01-02")
    assert code == 0
    assert "replayed 0 events" in out
    assert len(await db_rows(client, "SELECT id FROM audit_log")) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "replay"], "name one event id, or a range"),
        (["events", "replay", "1", "--from", "2026-11-30"], "name one event id, or a range"),
        (["events", "replay", "--from", "2026-11-30"], "a range needs both --from and --to"),
        (["events", "replay", "--from", "yesterday", "--to", "2026-11-30"], "is not a date"),
    ],
)
def test_wrong_arguments_say_what_to_write(argv, message, settings_env: Path, capsys):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err


async def test_an_unknown_event_is_refused(make_broker: BrokerFactory, store_env: str, capsys):
    await make_broker(store={"url": store_env})
    code, _, err = run_cli(capsys, "events", "replay", "0000")
    assert code == 1
    assert "no webhook event 0000" in err
