"""``broker export-customer`` and ``broker erase-customer`` (docs/operations.md: Retention), on
SQLite and on PostgreSQL (``store_url`` runs each test on both): one customer's rows and raw
bodies out, then gone, with the other customers untouched and the event ids kept as dedup keys."""

from __future__ import annotations

import json
import stat
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from broker.config import Settings, StoreSettings
from broker.core.decide import Outcome
from broker.store.audit import record_action
from broker.store.engine.backend import StoreBackend
from broker.store.opening import open_store
from tests.conftest import fast_settings
from tests.support.basics import subscription_event
from tests.support.cli import run_cli
from tests.support.retention import NOW, ingest, refund_event

DAY = 86_400.0
A = {
    "customer_id": "900000000000000011",
    "zgid": "70000000011",
    "zuid": "60000000011",
    "email": "alice@example.com",
    "subscription_id": "100000000000000011",
}
B = {
    "customer_id": "900000000000000022",
    "zgid": "70000000022",
    "zuid": "60000000022",
    "email": "bob@example.com",
    "subscription_id": "100000000000000022",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path, "http://127.0.0.1:1")


def event_of(who: dict[str, str], event_id: str) -> dict[str, Any]:
    return subscription_event(event_id=event_id, **who)


async def two_customers(store_url: str, settings: Settings) -> dict[str, dict[str, Any]]:
    store: StoreBackend = open_store(StoreSettings(url=store_url))
    await store.open()
    try:
        events = {"a": event_of(A, "8700000011"), "b": event_of(B, "8700000022")}
        for event in events.values():
            await ingest(store, settings, event, at=NOW - DAY)
        await ingest(store, settings, refund_event("8700000012", A["customer_id"]), at=NOW)
        for who in (A, B):
            await store.write(
                partial(
                    record_action,
                    at=NOW,
                    zuid=who["zuid"],
                    zgid=who["zgid"],
                    action="page.cancel",
                    result="done",
                    subscription_id=who["subscription_id"],
                    detail={"email": who["email"]},
                )
            )
    finally:
        await store.close()
    return events


def exported(capsys: pytest.CaptureFixture[str], store_url: str, *how: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, "export-customer", "--db", store_url, *how)
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


async def test_export_holds_one_customers_rows_and_raw_bodies_and_nothing_of_another(
    store_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    events = await two_customers(store_url, settings)

    by_org = exported(capsys, store_url, "--zgid", A["zgid"])
    by_customer = exported(capsys, store_url, "--customer-id", A["customer_id"])
    assert by_org == by_customer
    assert by_org["customer_ids"] == [A["customer_id"]]
    assert by_org["zgids"] == [A["zgid"]]
    assert by_org["subscription_ids"] == [A["subscription_id"]]
    tables = by_org["tables"]
    [stored_event] = tables["webhook_events"]
    assert json.loads(stored_event["raw_body"]) == events["a"]
    assert [row["event_id"] for row in tables["money_events"]] == ["8700000012"]
    assert [row["subscription_id"] for row in tables["subscriptions"]] == [A["subscription_id"]]
    assert [row["action"] for row in tables["audit_log"]] == ["page.cancel"]
    assert len(tables["deliveries"]) == 1
    text = json.dumps(by_org)
    for value in B.values():
        assert value not in text


async def test_export_to_a_file_is_private_and_never_overwrites(
    store_url: str, settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await two_customers(store_url, settings)
    out = tmp_path / "alice.json"
    args = ("export-customer", "--db", store_url, "--zgid", A["zgid"], "--out", str(out))

    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["zgids"] == [A["zgid"]]
    code, _, err = run_cli(capsys, *args)
    assert (code, err) == (1, f"{out} exists; choose a new file name\n")


async def test_erase_without_confirm_only_counts_and_with_it_removes_only_that_customer(
    store_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    events = await two_customers(store_url, settings)
    before_b = exported(capsys, store_url, "--zgid", B["zgid"])

    code, out, err = run_cli(capsys, "erase-customer", "--db", store_url, "--zgid", A["zgid"])
    assert code == 2
    assert "would erase 1 subscriptions" in out.splitlines()
    assert err == f"nothing was erased: add --confirm {A['zgid']} to erase these rows\n"
    assert exported(capsys, store_url, "--zgid", A["zgid"])["subscription_ids"] == [
        A["subscription_id"]
    ]

    code, out, err = run_cli(
        capsys, "erase-customer", "--db", store_url, "--zgid", A["zgid"], "--confirm", A["zgid"]
    )
    assert code == 0, err
    assert "erased 1 subscriptions" in out.splitlines()
    assert "backups taken before now still hold this customer" in out

    code, _, err = run_cli(capsys, "export-customer", "--db", store_url, "--zgid", A["zgid"])
    assert (code, err) == (
        1,
        f"no stored data for zgid {A['zgid']}: check the id (nothing was changed)\n",
    )
    assert exported(capsys, store_url, "--zgid", B["zgid"]) == before_b

    store = open_store(StoreSettings(url=store_url))
    await store.open()
    try:
        rows = await store.read(
            lambda db: db.select_all(
                "SELECT event_id, raw_body, subscription_id FROM webhook_events"
                " WHERE event_id IN ('8700000011', '8700000012')"
            )
        )
        kept = {r["event_id"]: (bytes(r["raw_body"]), r["subscription_id"]) for r in rows}
        assert kept["8700000011"] == (b"", None)
        # The id stays the dedup key: billing's resend recreates nothing.
        again = await ingest(store, settings, events["a"], at=NOW)
        assert again.outcome is Outcome.DUPLICATE
        audit = await store.read(
            lambda db: db.select_all("SELECT * FROM audit_log WHERE action = 'ops.erase_customer'")
        )
        assert len(audit) == 1
        assert json.loads(audit[0]["detail"])["rows"]["subscriptions"] == 1
        for value in A.values():
            assert value not in json.dumps(audit)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--customer-id", "abc"], "--customer-id must be billing's customer id: 1 to 32 digits"),
        (["--zgid", "7 OR 1=1"], "--zgid must be the org's zgid: 1 to 20 digits"),
        (["--zgid", "70000000099"], "no stored data for zgid 70000000099"),
    ],
)
@pytest.mark.parametrize("command", ["export-customer", "erase-customer"])
async def test_a_bad_or_unknown_id_is_refused_with_what_to_do_and_changes_nothing(
    store_url: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    command: str,
    argv: list[str],
    message: str,
) -> None:
    await two_customers(store_url, settings)
    confirm = ["--confirm", argv[1]] if command == "erase-customer" else []
    code, out, err = run_cli(capsys, command, "--db", store_url, *argv, *confirm)
    assert (code, out) == (1, "")
    assert err.startswith(message)
    assert exported(capsys, store_url, "--zgid", A["zgid"])["zgids"] == [A["zgid"]]
