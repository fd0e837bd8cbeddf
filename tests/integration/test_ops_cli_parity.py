"""The console's remaining actions and filters from the command line, against the real store and
a running broker: ``broker parked resolve`` (refused clearly, confirmed, audited as the shell's
user, then sent by the broker's worker), ``broker deliveries list`` with the console's filters
and human dates, ``broker events show`` with the body redacted. And the story page's owner: the
pipeline's resolved identity, billing's custom fields first."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import pytest

from broker.simulators.platform import PlatformSimulator
from tests.conftest import BrokerFactory, post_event
from tests.support.basics import (
    APP_DOMAIN,
    STORAGE_MONTHLY,
    STORAGE_YEARLY,
    ZAPIKEY,
    ZGID,
    ZUID,
    subscription_event,
)
from tests.support.cli import run_cli
from tests.support.landing import open_page, visitor
from tests.support.ops import OPS, audit_rows, delivery_ids, sign_in, wait_for_state

PARKED = "100000000000000009"
ORG = "70000000042"
HUMAN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # show_when's UTC format


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The settings ``parked resolve`` loads (as the running broker's): same database, plans."""
    for name, value in {
        "BROKER_PLATFORM__APP_DOMAIN": APP_DOMAIN,
        "BROKER_PLATFORM__ZAPIKEY": ZAPIKEY,
        "BROKER_STORE__PATH": str(tmp_path / "broker.db"),
        "BROKER_PLANS__STORAGE_ADDON_MONTHLY": STORAGE_MONTHLY,
        "BROKER_PLANS__STORAGE_ADDON_YEARLY": STORAGE_YEARLY,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BROKER_CONFIG", raising=False)
    return str(tmp_path / "broker.db")


async def test_parked_resolve_refuses_clearly_then_the_worker_sends_the_add(
    make_broker: BrokerFactory, simulator: PlatformSimulator, cli_settings: str, capsys
):
    client = await make_broker()
    parked = subscription_event(subscription_id=PARKED, zuid=None, zgid=None, event_id="7301")
    assert (await post_event(client, parked)).status == 200

    def resolve(*extra: str) -> tuple[int, str, str]:
        return run_cli(capsys, "parked", "resolve", *extra)

    code, _, err = resolve(PARKED, "--zgid", "org 42", "--zuid", ZUID, "--yes")
    assert code == 2
    assert "--zgid 'org 42': digits only" in err
    code, _, err = resolve("999", "--zgid", ORG, "--zuid", ZUID, "--yes")
    assert (code, err.strip()) == (2, "subscription 999 is unknown")
    code, _, err = resolve(PARKED, "--zgid", ORG, "--zuid", ZUID)  # no terminal under pytest
    assert code == 2
    assert "pass --yes" in err
    assert await delivery_ids(client, PARKED) == []  # nothing done unconfirmed

    code, out, err = resolve(PARKED, "--zgid", ORG, "--zuid", ZUID, "--yes")
    assert code == 0, err
    assert "zuid and zgid unknown" in out  # the reason it was parked
    assert f"resolved to org {ORG}: queued" in out
    (delivery_id,) = await delivery_ids(client, PARKED)
    assert f"delivery {delivery_id} queued" in out
    await wait_for_state(client, delivery_id, "done")
    assert simulator.subscriptions[ORG].active
    assert simulator.applied[0].body["zuid"] == ZUID

    (row,) = await audit_rows(client, "ops.resolve_parked")
    assert (row["zuid"], row["subscription_id"], row["result"]) == (
        f"ops:cli:{getpass.getuser()}",
        PARKED,
        "queued",
    )
    assert json.loads(row["detail"])["zgid"] == ORG
    code, _, err = resolve(PARKED, "--zgid", ORG, "--zuid", ZUID, "--yes")
    assert (code, err.strip()) == (2, f"subscription {PARKED} is not parked")


async def test_deliveries_list_takes_the_consoles_filters_with_human_dates(
    make_broker: BrokerFactory, tmp_path: Path, capsys
):
    client = await make_broker()
    other = "100000000000000002"
    for sid, zgid in (("100000000000000001", ZGID), (other, "70000000002")):
        event = subscription_event(subscription_id=sid, zgid=zgid, customer_id=f"9{sid[1:]}")
        assert (await post_event(client, event)).status == 200
        (delivery_id,) = await delivery_ids(client, sid)
        await wait_for_state(client, delivery_id, "done")
    db = str(tmp_path / "broker.db")

    def listed(*filters: str) -> list[dict[str, object]]:
        code, out, err = run_cli(capsys, "deliveries", "list", "--db", db, "--json", *filters)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]

    (only,) = listed("--org", "70000000002")
    assert only["subscription_id"] == other
    assert HUMAN.fullmatch(str(only["created_at"]))
    assert HUMAN.fullmatch(str(only["finished_at"]))
    assert [r["subscription_id"] for r in listed("--subscription", other)] == [other]
    assert len(listed("--state", "done", "--since", "2000-01-01")) == 2
    assert listed("--until", "2000-01-01") == []
    assert len(listed("--limit", "1")) == 1

    code, out, _ = run_cli(capsys, "deliveries", "list", "--db", db, "--limit", "1")
    (row,) = [line for line in out.splitlines() if other in line]
    assert HUMAN.search(row)
    assert "(more: --page 2)" in out
    code, _, err = run_cli(capsys, "deliveries", "list", "--db", db, "--since", "yesterday")
    assert code == 2
    assert "'yesterday' is not a date" in err


async def test_events_show_prints_outcome_reason_and_the_body_redacted(
    make_broker: BrokerFactory, tmp_path: Path, cli_settings: str, capsys
):
    client = await make_broker()
    event = subscription_event(subscription_id=PARKED, zuid=None, zgid=None, event_id="7302")
    event["data"]["subscription"]["notes"] = f"zapikey={ZAPIKEY}"
    assert (await post_event(client, event)).status == 200
    db = str(tmp_path / "broker.db")

    code, out, err = run_cli(capsys, "events", "show", "7302", "--db", db)
    assert code == 0, err
    assert ZAPIKEY not in out
    assert "zapikey=***" in out
    assert re.search(r"^outcome\s+parked$", out, re.MULTILINE), out
    assert re.search(r"^reason\s+.*zuid and zgid unknown", out, re.MULTILINE), out
    assert re.search(r"^received_at\s+" + HUMAN.pattern + "$", out, re.MULTILINE), out
    assert f'"subscription_id": "{PARKED}"' in out  # the body, indented JSON
    code, out, _ = run_cli(capsys, "events", "show", "7302", "--db", db, "--json")
    shown = json.loads(out)
    assert shown["event_id"] == "7302"
    assert ZAPIKEY not in shown["raw_body"]
    code, _, err = run_cli(capsys, "events", "show", "404", "--db", db)
    assert (code, err.strip()) == (1, "no webhook event with id 404")
    code, out, err = run_cli(capsys, "events", "show", "7302")  # the database from settings
    assert code == 0, err
    assert "7302" in out
    code, out, err = run_cli(capsys, "events", "list")
    assert code == 0, err
    assert "7302" in out


async def test_story_page_shows_the_owner_billings_custom_fields_name(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS)
    await sign_in(client)
    sid = "100000000000000001"
    assert (await post_event(client, subscription_event(subscription_id=sid))).status == 200
    page = await (await client.get(f"/ops/subscriptions/{sid}")).text()
    assert f"<dt>Org (zgid)</dt><dd>{ZGID}</dd>" in page
    assert f"<dt>Owner (zuid)</dt><dd>{ZUID}</dd>" in page


async def test_org_filter_finds_a_subscription_whose_org_only_a_verified_sign_in_knows(
    make_broker: BrokerFactory, simulator: PlatformSimulator, tmp_path: Path, capsys
):
    """Billing names only the zuid; the user's signed visit binds it to ZGID, so the pipeline
    sends it there. The org filter resolves the org the same way and finds it."""
    client = await make_broker(ops=OPS)
    await sign_in(client)
    sid = "100000000000000001"
    event = subscription_event(subscription_id=sid, zgid=None)
    assert (await post_event(client, event)).status == 200
    page, text = await open_page(client, visitor())
    assert page.status == 200, text
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    assert simulator.applied[0].zgid == ZGID

    listed = await (await client.get(f"/ops/deliveries?org={ZGID}")).text()
    assert f"/ops/subscriptions/{sid}" in listed
    code, out, err = run_cli(
        capsys, "deliveries", "list", "--db", str(tmp_path / "broker.db"), "--org", ZGID, "--json"
    )
    assert code == 0, err
    assert [json.loads(line)["subscription_id"] for line in out.splitlines()] == [sid]
    story = await (await client.get(f"/ops/subscriptions/{sid}")).text()
    assert f"<dt>Org (zgid)</dt><dd>{ZGID}</dd>" in story
