"""Money events have a policy: a refund, a chargeback, a voided invoice or a credit note is
recorded once, listed in /ops/money and counted; by default access is unchanged, and a vendor's
``cancel`` reaches the platform as a Cancel through the same pipeline as subscription events.

Driven end to end: the billing simulator sends the event as a webhook (its money control), the
broker decides, and the Developer Console simulator's recorded calls show what reached it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.config import MoneyEventSettings
from broker.core.money_events import MoneyKind, Verdict, decide_money, read_money_event
from broker.simulators.billing.money import MoneyEventType
from tests.support.basics import ZAPIKEY, body_of
from tests.support.ops import OPS, sign_in
from tests.support.pages import PageWorld, WorldFactory
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    return store_section(store_url)


async def started(make_world: WorldFactory, **money: str) -> tuple[PageWorld, str]:
    world = await make_world(money_events=money, ops=OPS)
    owner = await world.signed_in()
    live = await world.subscribed(owner)
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]
    return world, live


async def money_rows(world: PageWorld) -> list[dict[str, Any]]:
    return await world.rows(
        "SELECT event_type, kind, subscription_id, amount, of_total, verdict, reason"
        " FROM money_events ORDER BY received_at"
    )


def counted(text: str, kind: str, verdict: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "broker_money_events_total" and sample.labels == {
                "kind": kind,
                "verdict": verdict,
            }:
                return sample.value
    return 0.0


# --- reading and deciding (pure) ----------------------------------------------------------------


def refund(refunded: str, paid: str) -> dict[str, Any]:
    return {
        "refund": {"refund_id": "9001", "amount": refunded, "customer_id": "42"},
        "payment": {"payment_id": "9002", "amount": paid, "customer_id": "42"},
    }


def test_a_refund_of_the_whole_payment_is_full_and_a_smaller_one_is_not() -> None:
    full = read_money_event(MoneyKind.REFUND, refund("50.00", "50.00"))
    part = read_money_event(MoneyKind.REFUND, refund("10.00", "50.00"))
    assert (full.amount, full.of_total, full.full) == (Decimal("50.00"), Decimal("50.00"), True)
    assert (part.amount, part.full) == (Decimal("10.00"), False)


def test_an_unreadable_refund_amount_never_withholds_access() -> None:
    event = read_money_event(MoneyKind.REFUND, refund("lots", "50.00"))
    decision = decide_money(event, MoneyEventSettings(on_refund="cancel"))
    assert event.full is False
    assert decision.verdict is Verdict.RECORD


def test_hostile_ids_and_currency_in_a_money_payload_are_not_read() -> None:
    data = {
        "invoice": {
            "total": "5",
            "currency_code": "<script>" + "A" * 5000,
            "customer_id": ["42"],
            "subscriptions": [{"subscription_id": "1 OR 1=1"}, "x", {"subscription_id": True}],
        }
    }
    event = read_money_event(MoneyKind.INVOICE_VOIDED, data)
    assert (event.subscription_ids, event.currency_code, event.customer_id) == ((), None, None)


@pytest.mark.parametrize("kind", list(MoneyKind))
def test_by_default_every_money_event_is_recorded_only(kind: MoneyKind) -> None:
    event = read_money_event(kind, refund("50.00", "50.00"))
    assert decide_money(event, MoneyEventSettings()).verdict is Verdict.RECORD


def test_a_credit_note_is_recorded_even_when_everything_else_cancels() -> None:
    settings = MoneyEventSettings(
        on_refund="cancel", on_chargeback="cancel", on_invoice_voided="cancel"
    )
    event = read_money_event(MoneyKind.CREDIT_NOTE, {"creditnote": {"amount": "50.00"}})
    assert decide_money(event, settings).verdict is Verdict.RECORD


def test_a_credit_notes_figure_is_its_documented_total() -> None:
    # specs/credit-notes.yml: `total` is "Total credits raised in this credit note"; a stray
    # `amount` beside it is not the credited figure.
    note = {"creditnote": {"creditnote_id": "2077000000900001", "total": 25.80, "amount": "99"}}
    assert read_money_event(MoneyKind.CREDIT_NOTE, note).amount == Decimal("25.80")


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", list(MoneyEventType))
async def test_by_default_a_money_event_is_listed_counted_and_changes_no_access(
    make_world: WorldFactory, event_type: MoneyEventType
) -> None:
    world, live = await started(make_world)
    world.sim.state.money_event(live, event_type)
    await world.settle()

    [row] = await money_rows(world)
    assert (row["event_type"], row["subscription_id"], row["verdict"]) == (
        event_type.value,
        live,
        "record",
    )
    assert "access unchanged" in row["reason"]
    assert [c.method for c in world.calls()] == ["POST"]

    operator = (await world.browser()).client
    await sign_in(operator)
    page = await (await operator.get("/ops/money")).text()
    assert f">{event_type.value}</a>" in page
    assert live in page
    assert "unchanged" in page
    metrics = await (await operator.get("/metrics")).text()
    assert counted(metrics, row["kind"], "record") == 1


async def test_a_resent_money_event_is_stored_and_counted_once(make_world: WorldFactory) -> None:
    world, live = await started(make_world)
    world.sim.state.money_event(live, MoneyEventType.REFUND)
    await world.settle()
    [event] = [e for e in world.sim.events if e.event_type == "payment_refunded"]
    world.sim.resend(event.event_id)
    await world.settle()

    assert len(await money_rows(world)) == 1
    metrics = await (await (await world.browser()).client.get("/metrics")).text()
    assert counted(metrics, "refund", "record") == 1


async def test_refund_cancel_a_full_refund_cancels_on_the_platform(
    make_world: WorldFactory,
) -> None:
    world, live = await started(make_world, on_refund="cancel")
    world.sim.state.money_event(live, MoneyEventType.REFUND)
    await world.settle()

    assert [c.method for c in world.calls()] == ["POST", "DELETE"]
    [row] = await money_rows(world)
    assert row["verdict"] == "withhold"
    assert Decimal(row["amount"]) == Decimal(row["of_total"]) == Decimal("50")
    assert world.sim.subscriptions[live].status == "live"  # billing's subscription is untouched
    operator = (await world.browser()).client
    await sign_in(operator)
    withheld = await (await operator.get("/ops/money", params={"state": "withhold"})).text()
    recorded = await (await operator.get("/ops/money", params={"state": "record"})).text()
    assert ">payment_refunded</a>" in withheld
    assert "withheld" in withheld
    assert ">payment_refunded</a>" not in recorded


async def test_refund_cancel_a_partial_refund_keeps_access(make_world: WorldFactory) -> None:
    world, live = await started(make_world, on_refund="cancel")
    world.sim.state.money_event(live, MoneyEventType.REFUND, Decimal("10.00"))
    await world.settle()

    assert [c.method for c in world.calls()] == ["POST"]
    [row] = await money_rows(world)
    assert row["verdict"] == "record"
    assert "not a full refund of the payment" in row["reason"]
    assert (Decimal(row["amount"]), Decimal(row["of_total"])) == (Decimal("10"), Decimal("50"))


@pytest.mark.parametrize(
    ("setting", "event_type"),
    [
        ("on_chargeback", MoneyEventType.CHARGEBACK),
        ("on_invoice_voided", MoneyEventType.INVOICE_VOIDED),
    ],
)
async def test_chargeback_and_void_set_to_cancel_cancel_on_the_platform(
    make_world: WorldFactory, setting: str, event_type: MoneyEventType
) -> None:
    world, live = await started(make_world, **{setting: "cancel"})
    world.sim.state.money_event(live, event_type)
    await world.settle()

    assert [c.method for c in world.calls()] == ["POST", "DELETE"]
    [stored] = await world.rows("SELECT access_hold, state, reason FROM subscriptions")
    assert stored["access_hold"].startswith(event_type.value)
    assert stored["state"] == "applied"  # a Cancel is the target chosen
    assert "access withheld after" in stored["reason"]


async def test_withheld_access_returns_when_billing_renews_the_subscription(
    make_world: WorldFactory,
) -> None:
    world, live = await started(make_world, on_chargeback="cancel")
    world.sim.state.money_event(live, MoneyEventType.CHARGEBACK)
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "DELETE"]

    world.sim.set_today(date(2026, 7, 10))  # the term ends July 9: billing renews and charges
    await world.settle()

    assert "subscription_renewed" in [e.event_type for e in world.sim.events]
    assert [c.method for c in world.calls()] == ["POST", "DELETE", "POST"]
    [stored] = await world.rows("SELECT access_hold FROM subscriptions")
    assert stored["access_hold"] is None


async def test_the_money_control_refuses_an_amount_above_the_term(make_world: WorldFactory) -> None:
    world, live = await started(make_world)
    response = await world.checkout.post(
        f"/_sim/subscriptions/{live}/money", json={"event": "payment_refunded", "amount": "999"}
    )
    assert response.status == 400
    assert "at most 50.00" in (await response.json())["error"]
    assert await money_rows(world) == []


async def post_money(world: PageWorld, event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    payload = {"event_id": event_id, "event_type": "payment_refunded", "data": data}
    client = (await world.browser()).client
    response = await client.post(
        "/webhooks/billing",
        data=body_of(payload),
        headers={"zapikey": ZAPIKEY, "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_a_refund_naming_no_known_subscription_only_records_and_says_so(
    make_world: WorldFactory,
) -> None:
    world, _ = await started(make_world, on_refund="cancel")
    answer = await post_money(
        world, "9100000000000001", refund("50.00", "50.00") | {"payment": {"amount": "50.00"}}
    )

    assert answer["outcome"] == "ignored"
    assert "names no single subscription the broker knows" in answer["reason"]
    [row] = await money_rows(world)
    assert (row["verdict"], row["subscription_id"]) == ("record", None)
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST"]


async def test_a_refund_carrying_its_subscription_is_applied_to_it(
    make_world: WorldFactory,
) -> None:
    world, live = await started(make_world, on_refund="cancel")
    carried = {"subscription_id": live, "status": "live"}
    data = refund("50.00", "50.00") | {"subscription": carried}
    answer = await post_money(world, "9100000000000002", data)

    assert answer["outcome"] == "queued"
    await world.settle()
    assert [c.method for c in world.calls()] == ["POST", "DELETE"]
