"""``broker money list``: the operator's list of money events from the command line, with the
console's filters (the same read as ``/ops/money``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import BrokerFactory, post_event
from tests.support.cli import run_cli


def refund_event(event_id: str, refunded: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_type": "payment_refunded",
        "data": {
            "refund": {"refund_id": "9001", "amount": refunded, "currency_code": "EUR"},
            "payment": {"payment_id": "9002", "amount": "80.00"},
        },
    }


async def test_money_list_shows_each_money_event_once_and_filters_by_verdict(
    make_broker: BrokerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = await make_broker()
    for event in (refund_event("9300000000000001", "80.00"), refund_event("9300000000000002", "5")):
        assert (await post_event(broker, event)).status == 200
    assert (await post_event(broker, refund_event("9300000000000001", "80.00"))).status == 200
    await broker.close()
    db = str(tmp_path / "broker.db")

    code, out, err = run_cli(capsys, "money", "list", "--db", db, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["event_id"], r["amount"], r["of_total"]) for r in rows) == [
        ("9300000000000001", "80.00", "80.00"),
        ("9300000000000002", "5", "80.00"),
    ]
    assert {r["verdict"] for r in rows} == {"record"}
    assert {r["currency_code"] for r in rows} == {"EUR"}

    code, out, _ = run_cli(capsys, "money", "list", "--db", db, "--state", "withhold")
    assert (code, out.splitlines()[-1]) == (0, "(nothing matches)")
