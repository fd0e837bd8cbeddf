"""The console's lists and actions from the command line: ``broker events|parked|audit list``
with the same filters and human dates (never epoch floats), ``broker deliveries retry-now``, and
``broker ops-hash``, whose output is a hash the settings accept and the password verifies."""

from __future__ import annotations

import io
import json

import pytest

from broker.config import OpsSettings
from broker.core.operator_password import verify_password
from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import ZAPIKEY, eventually, subscription_event
from tests.support.cli import run_cli
from tests.support.ops import delivery_ids, delivery_state, wait_for_state


@pytest.fixture
def db(store_url: str, make_broker: BrokerFactory) -> str:
    """The store the broker and the commands share: each test on SQLite and on PostgreSQL."""
    return store_url


def test_ops_hash_prints_a_hash_the_settings_accept(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long operator password\n"))
    code, out, _ = run_cli(capsys, "ops-hash")
    stored = out.strip()
    assert code == 0
    assert verify_password("a long operator password", stored)
    assert "a long operator password" not in out
    assert OpsSettings(password_hash=stored).enabled
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run_cli(capsys, "ops-hash")
    assert code == 1
    assert "at least 12 characters" in err


def test_a_password_in_place_of_the_hash_is_refused():
    with pytest.raises(ValueError, match="never the password itself"):
        OpsSettings(password_hash="hunter2hunter2")


async def test_events_list_filters_with_human_dates_and_hides_secrets(
    make_broker: BrokerFactory, db: str, capsys
):
    client = await make_broker(store={"url": db})
    event = subscription_event(event_id="7101")
    event["data"]["subscription"]["notes"] = f"zapikey={ZAPIKEY}"
    assert (await post_event(client, event)).status == 200
    assert (
        await post_event(
            client,
            subscription_event(
                "subscription_renewed",
                event_id="7102",
                subscription_id="100000000000000002",
                zgid="70000000002",
                customer_id="900000000000000002",
            ),
        )
    ).status == 200

    code, out, _ = run_cli(capsys, "events", "list", "--db", db, "--type", "subscription_renewed")
    assert code == 0
    assert "7102" in out
    assert "7101" not in out
    (row,) = [line for line in out.splitlines() if "7102" in line]
    assert row[:5] == "2026-"  # a UTC date, not epoch seconds
    code, out, _ = run_cli(capsys, "events", "list", "--db", db, "--json", "--org", "70000000002")
    (only,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert only["event_id"] == "7102"
    assert "raw_body" not in only
    code, out, _ = run_cli(capsys, "events", "list", "--db", db, "--until", "2001-01-01")
    assert "(nothing matches)" in out
    code, _, err = run_cli(capsys, "events", "list", "--db", db, "--since", "last week")
    assert code == 2
    assert "'last week' is not a date" in err


async def test_parked_and_audit_lists(make_broker: BrokerFactory, db: str, capsys):
    client = await make_broker(store={"url": db})
    parked = subscription_event(subscription_id="100000000000000009", zuid=None, zgid=None)
    assert (await post_event(client, parked)).status == 200
    code, out, _ = run_cli(capsys, "parked", "list", "--db", db)
    assert code == 0
    assert "100000000000000009" in out
    assert "zuid and zgid unknown" in out
    code, out, _ = run_cli(capsys, "audit", "list", "--db", db)
    assert code == 0
    assert "(nothing matches)" in out


async def test_retry_now_sends_a_pending_delivery_and_is_audited(
    make_broker: BrokerFactory, simulator: PlatformSimulator, db: str, capsys
):
    client = await make_broker(
        delivery={"initial_backoff_seconds": 3600.0, "max_backoff_seconds": 3600.0},
        store={"url": db},
    )
    simulator.fail_next(1, status=503)
    sid = "100000000000000001"
    assert (await post_event(client, subscription_event(subscription_id=sid))).status == 200
    await eventually(lambda: delivery_ids(client, sid), message="queued")
    (delivery_id,) = await delivery_ids(client, sid)

    async def failed_once() -> bool:
        rows = await db_rows(
            client, "SELECT attempts, state FROM deliveries WHERE id = ?", [delivery_id]
        )
        return (rows[0]["attempts"], rows[0]["state"]) == (1, "pending")

    await eventually(failed_once, message="first attempt failed")
    code, out, _ = run_cli(capsys, "deliveries", "--db", db, "retry-now", str(delivery_id))
    assert code == 0, out
    assert f"delivery {delivery_id} is due now" in out
    await wait_for_state(client, delivery_id, "done")
    code, out, _ = run_cli(capsys, "audit", "list", "--db", db, "--type", "ops.retry_now")
    assert "ops.retry_now" in out
    assert sid in out
    code, _, err = run_cli(capsys, "deliveries", "--db", db, "retry-now", str(delivery_id))
    assert code == 1
    assert "not pending" in err
    assert await delivery_state(client, delivery_id) == "done"


async def test_dead_letters_listed_shown_and_retried_from_the_command_line(
    make_broker: BrokerFactory, simulator: PlatformSimulator, db: str, capsys
):
    client = await make_broker(store={"url": db})
    simulator.fail_next(1, status=400)
    sid = "100000000000000001"
    assert (await post_event(client, subscription_event(subscription_id=sid))).status == 200
    await eventually(lambda: delivery_ids(client, sid), message="queued")
    (delivery_id,) = await delivery_ids(client, sid)
    await wait_for_state(client, delivery_id, "dead")

    code, out, _ = run_cli(capsys, "deliveries", "list", "--state", "dead", "--db", db)
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.split()[:2] == [str(delivery_id), "dead"]]
    assert sid in row
    assert "INVALID_DATA" in row
    code, out, _ = run_cli(capsys, "deliveries", "show", str(delivery_id), "--db", db)
    assert code == 0
    shown = json.loads(out)
    assert shown["delivery"]["state"] == "dead"
    assert [a["status"] for a in shown["attempts"]] == [400]
    code, out, _ = run_cli(capsys, "deliveries", "retry", str(delivery_id), "--db", db)
    assert code == 0
    assert f"requeued: [{delivery_id}]" in out
    await wait_for_state(client, delivery_id, "done")
    assert len(simulator.applied) == 1
