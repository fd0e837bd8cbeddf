"""Reconciliation in both directions: what the broker holds as billing is checked against
billing's full list, and one billing answers 404 for is ``missing_in_billing``, never "agreed".
Real broker, billing simulator, Developer Console simulator; on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from broker.cli.reconcile import table
from broker.core.reconcile import DriftKind
from broker.delivery.reconcile import RunOutcome, RunReport, run_reconciliation
from broker.web.appkeys import reconcile_key
from tests.support.ops import OPS, audit_rows, sign_in
from tests.support.pages import STANDARD_CODE, PageWorld, WorldFactory
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    return store_section(store_url)


ORG = {"zuid": "6100000001", "zgid": "7100000001"}


async def reconcile(world: PageWorld, **options: Any) -> RunReport:
    return await run_reconciliation(world.app[reconcile_key], **options)


async def live_then_forgotten(world: PageWorld) -> str:
    """A subscription the platform got its Add for, then billing no longer holds (as after a
    demo restart: the simulated billing starts empty while the broker's database stays)."""
    sub = world.sim.subscribe(STANDARD_CODE, quantity=3, **ORG)
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]
    del world.sim.subscriptions[sub.subscription_id]
    return sub.subscription_id


def single_reads(world: PageWorld) -> list[str]:
    """The ids of ``GET /subscriptions/{id}`` calls billing received, in order."""
    prefix = "/subscriptions/"
    return [
        r.path.removeprefix(prefix)
        for r in world.sim.api_requests
        if r.method == "GET" and r.path.startswith(prefix)
    ]


def list_reads(world: PageWorld) -> list[dict[str, str]]:
    return [
        r.query for r in world.sim.api_requests if r.method == "GET" and r.path == "/subscriptions"
    ]


def cancels(world: PageWorld) -> int:
    """Cancels the Developer Console applied (each test's world has one org)."""
    return len(world.calls("DELETE"))


async def test_a_subscription_billing_lists_is_not_read_one_by_one(world: PageWorld) -> None:
    sub = world.sim.subscribe(STANDARD_CODE, quantity=3, **ORG)
    await world.settle()
    world.sim.api_requests.clear()

    report = await reconcile(world)

    assert report.outcome is RunOutcome.DONE
    assert report.drift == []
    assert [q.get("filter_by") for q in list_reads(world)] == ["SubscriptionStatus.All"]
    assert sub.subscription_id not in single_reads(world)
    assert report.counts.missing_in_billing == 0


async def test_report_lists_the_404_as_missing_and_sends_nothing(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconcile={"on_missing_in_billing": "report"})
    sid = await live_then_forgotten(world)
    world.sim.api_requests.clear()

    report = await reconcile(world)
    again = await reconcile(world)
    await world.deliveries_finished()

    assert report.outcome is RunOutcome.DONE
    assert [(d.subscription_id, d.kind, d.action) for d in report.drift] == [
        (sid, DriftKind.MISSING_IN_BILLING, "reported")
    ]
    assert report.drift[0].broker == f"live {STANDARD_CODE}"
    assert report.counts.missing_in_billing == 1
    assert [d.kind for d in again.drift] == [DriftKind.MISSING_IN_BILLING]  # still not agreed
    assert single_reads(world) == [sid, sid]  # only the absent one, once a run
    assert cancels(world) == 0
    runs = await world.rows(
        "SELECT missing_in_billing, drift FROM reconcile_runs WHERE id = ?", [report.run_id]
    )
    assert runs == [{"missing_in_billing": 1, "drift": 1}]
    drift = await world.rows("SELECT kind FROM reconcile_drift WHERE run_id = ?", [report.run_id])
    assert drift == [{"kind": "missing_in_billing"}]
    stored = await world.rows("SELECT status FROM subscriptions WHERE subscription_id = ?", [sid])
    assert stored == [{"status": "live"}]


async def test_cancel_sends_exactly_one_cancel_and_a_second_run_sends_none(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconcile={"on_missing_in_billing": "cancel"})
    sid = await live_then_forgotten(world)

    report = await reconcile(world)
    await world.platform.wait_until(lambda p: any(c.method == "DELETE" for c in p.applied))
    await world.deliveries_finished()
    again = await reconcile(world)
    await world.deliveries_finished()

    assert [(d.kind, d.action) for d in report.drift] == [
        (DriftKind.MISSING_IN_BILLING, "cancelled: queued")
    ]
    assert cancels(world) == 1
    assert [c.method for c in world.calls()] == ["POST", "DELETE"]
    assert again.drift == []
    stored = await world.rows(
        "SELECT status, state FROM subscriptions WHERE subscription_id = ?", [sid]
    )
    # Its state says why it was cancelled: billing no longer has it.
    assert stored == [{"status": "deleted", "state": "missing_in_billing"}]
    missing = await world.rows("SELECT state FROM billing_missing")
    assert missing == [{"state": "cancelled"}]


async def test_a_dry_run_reports_the_404_and_changes_nothing(make_world: WorldFactory) -> None:
    world = await make_world(reconcile={"on_missing_in_billing": "cancel"})
    sid = await live_then_forgotten(world)

    report = await reconcile(world, dry_run=True)

    assert [(d.subscription_id, d.kind, d.action) for d in report.drift] == [
        (sid, DriftKind.MISSING_IN_BILLING, "would cancel")
    ]
    assert await world.rows("SELECT * FROM billing_missing") == []
    assert len(world.calls()) == 1


async def test_a_subscription_billing_has_again_is_no_longer_missing(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconcile={"on_missing_in_billing": "report"})
    sub = world.sim.subscribe(STANDARD_CODE, quantity=3, **ORG)
    await world.settle()
    kept = world.sim.subscriptions.pop(sub.subscription_id)
    first = await reconcile(world)
    world.sim.subscriptions[sub.subscription_id] = kept  # billing answers for it again

    second = await reconcile(world)

    assert [d.kind for d in first.drift] == [DriftKind.MISSING_IN_BILLING]
    assert second.drift == []
    assert await world.rows("SELECT * FROM billing_missing") == []


async def test_ask_lists_it_in_ops_and_the_button_sends_one_cancel_audited(
    make_world: WorldFactory,
) -> None:
    world = await make_world(ops=OPS)  # ask is the default
    sid = await live_then_forgotten(world)
    client = (await world.browser()).client
    csrf = await sign_in(client)

    report = await reconcile(world)
    listed = await (await client.get("/ops/missing")).text()
    forged = await client.post(f"/ops/missing/{sid}/cancel", data={"csrf": "forged"})
    after_forgery = len(world.calls())
    pressed = await client.post(f"/ops/missing/{sid}/cancel", data={"csrf": csrf})
    await world.platform.wait_until(lambda p: any(c.method == "DELETE" for c in p.applied))
    await world.deliveries_finished()
    twice = await client.post(f"/ops/missing/{sid}/cancel", data={"csrf": csrf})
    again = await reconcile(world)
    await world.deliveries_finished()

    assert [(d.kind, d.action) for d in report.drift] == [
        (DriftKind.MISSING_IN_BILLING, "asked: waiting for an operator (/ops/missing)")
    ]
    assert sid in listed
    assert f'action="/ops/missing/{sid}/cancel"' in listed
    assert forged.status == 403
    assert after_forgery == 1  # the forged post sent nothing
    assert pressed.status == 200
    assert "marked gone from billing" in await pressed.text()
    assert twice.status == 409
    assert "cancelled already" in await twice.text()
    assert cancels(world) == 1
    assert again.drift == []
    (audited,) = await audit_rows(client, "ops.cancel_missing_in_billing")
    assert (audited["subscription_id"], audited["result"]) == (sid, "queued")
    assert audited["zuid"].startswith("ops:")


async def test_the_page_shows_a_subscription_billing_404s_as_not_found_never_live(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconcile={"on_missing_in_billing": "report"})
    owner = await world.signed_in()
    sid = await world.subscribed(owner)
    del world.sim.subscriptions[sid]
    await reconcile(world)

    page = await owner.get("/manage")

    assert page.status == 200
    assert "Not found in billing; contact the vendor" in page.text
    assert 'class="status status-live"' not in page.text
    assert "/manage/change" not in page.text
    assert "/manage/cancel" not in page.text
    assert "/manage/subscribe" not in page.text


async def test_the_ops_org_view_shows_it_not_found_in_billing(make_world: WorldFactory) -> None:
    world = await make_world(ops=OPS, reconcile={"on_missing_in_billing": "report"})
    sid = await live_then_forgotten(world)
    client = (await world.browser()).client
    await sign_in(client)
    await reconcile(world)

    view = await client.get(f"/ops/orgs/{ORG['zgid']}")

    assert view.status == 200
    text = await view.text()
    assert sid in text
    assert 'not found in billing</strong> (<a href="/ops/missing">reported</a>)' in text


async def test_the_cli_table_and_the_run_page_list_it(make_world: WorldFactory) -> None:
    world = await make_world(ops=OPS, reconcile={"on_missing_in_billing": "report"})
    sid = await live_then_forgotten(world)
    client = (await world.browser()).client
    await sign_in(client)

    report = await reconcile(world)
    run_page = await (await client.get(f"/ops/reconcile/{report.run_id}")).text()
    printed = table(report)

    assert "1 held as billing that billing answers 404 for (missing_in_billing)" in printed
    (row,) = [line for line in printed.splitlines() if line.startswith(sid)]
    assert row.split()[1:] == ["missing_in_billing", "not", "found", "(404)", "live",
                               STANDARD_CODE, "reported"]  # fmt: skip
    assert "Missing in billing" in run_page
    assert sid in run_page
