"""The billing simulator is faithful enough to test reconciliation: every event is logged and
listed whether or not its webhook went out; subscriptions are listed and filtered; dunning, trial
to free plan, expiry and scheduled pauses emit what Zoho would (docs/contracts.md sections 3-5);
backdated changes emit nothing; ids come as strings or JSON numbers; a per-minute limit answers
429 with Retry-After. Everything is driven over the simulator's real HTTP app.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from broker.simulators.billing import BillingSimulator
from broker.simulators.billing.listing import EventOrder
from broker.simulators.billing.subscriptions import DunningOutcome, DunningPolicy
from tests.support.billing import (
    FREE,
    PROFESSIONAL,
    STANDARD,
    TRIAL,
    ZAPIKEY,
    Api,
    Client,
    ClientFactory,
    Receiver,
    ServerFactory,
    attempts,
    event_types,
    make_sim,
)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def hook_url(receiver: Receiver, aiohttp_server: ServerFactory) -> str:
    return str((await aiohttp_server(receiver.app())).make_url("/hook"))


async def serve(sim: BillingSimulator, aiohttp_client: ClientFactory) -> tuple[Client, Api]:
    client = await aiohttp_client(sim.app())
    return client, Api(client)


def sub_path(sub: Any) -> str:
    return f"/_sim/subscriptions/{sub.subscription_id}"


# --- the event log -----------------------------------------------------------------------------


async def test_dropped_webhooks_still_appear_in_the_events_api(
    hook_url: str, receiver: Receiver, aiohttp_client: ClientFactory
) -> None:
    sim = make_sim(webhook_url=hook_url, webhook_zapikey=ZAPIKEY)
    client, api = await serve(sim, aiohttp_client)
    dropping = await client.post("/_sim/webhooks", json={"drop_all": True})
    sim.subscribe(FREE)
    sim.subscribe(STANDARD)
    await client.post("/_sim/webhooks", json={"drop_all": False})
    sim.subscribe(FREE)
    await sim.wait_until(lambda s: attempts(s) == 1)

    listed = (await api.ok("GET", "/events"))["events"][::-1]  # newest first by default
    read = [(await api.ok("GET", f"/events/{e['event_id']}"))["event"] for e in listed]

    assert dropping.status == 200
    assert [d.state for d in sim.webhook_deliveries] == ["dropped"] * 3 + ["delivered"]
    assert [e["event_type"] for e in listed] == [
        "subscription_created",
        "subscription_created",
        "payment_thankyou",
        "subscription_created",
    ]
    statuses = [[hook["status"] for hook in e["webhooks"]] for e in read]
    assert statuses == [["failure"]] * 3 + [["success"]]
    assert json.loads(read[3]["payload"]) == receiver.posts[0].payload
    assert [p.payload["event_id"] for p in receiver.posts] == [listed[3]["event_id"]]


async def test_events_page_without_page_context_and_ignore_unknown_filters(
    sim: BillingSimulator, api: Api
) -> None:
    sim.subscribe(FREE)  # June 1
    sim.set_today(date(2026, 6, 5))
    sim.subscribe(FREE)
    sim.set_today(date(2026, 6, 9))
    sim.subscribe(FREE)

    first = await api.ok("GET", "/events", params={"per_page": "2", "sort_order": "A"})
    second = await api.ok("GET", "/events", params={"per_page": "2", "page": "2"})
    window = await api.ok("GET", "/events", params={"date_start": "June", "sort_order": "up"})

    days = [e["event_time"] for e in first["events"] + second["events"]]
    assert days == ["2026-06-09", "2026-06-05", "2026-06-01"]  # newest first, A ignored
    assert "page_context" not in first
    assert window["events"] == first["events"] + second["events"]


async def test_events_filter_by_day_and_order_when_the_simulator_is_told_to(
    aiohttp_client: ClientFactory,
) -> None:
    sim = make_sim(events_order=EventOrder.OLDEST_FIRST, event_filters=True)
    _, api = await serve(sim, aiohttp_client)
    sim.subscribe(FREE)  # June 1
    sim.set_today(date(2026, 6, 5))
    sim.subscribe(FREE)
    sim.set_today(date(2026, 6, 9))
    sim.subscribe(FREE)

    oldest = await api.ok("GET", "/events")
    newest = await api.ok("GET", "/events", params={"sort_order": "D"})
    window = await api.ok(
        "GET", "/events", params={"date_start": "2026-06-02", "date_end": "2026-06-08"}
    )
    bad_day, bad_body = await api.call("GET", "/events", params={"date_start": "June"})
    bad_order, _ = await api.call("GET", "/events", params={"sort_order": "up"})

    assert [e["event_time"] for e in oldest["events"]] == ["2026-06-01", "2026-06-05", "2026-06-09"]
    assert newest["events"] == oldest["events"][::-1]
    assert [e["event_time"] for e in window["events"]] == ["2026-06-05"]
    assert (bad_day, bad_body["code"]) == (400, 4)
    assert "date_start" in bad_body["message"]
    assert bad_order == 400


async def test_seeded_drop_fraction_drops_the_same_webhooks_every_run(hook_url: str) -> None:
    def dropped_pattern() -> list[bool]:
        sim = make_sim(webhook_url=hook_url)
        sim.drop_webhook_fraction(0.5, seed=7)
        for _ in range(20):
            sim.subscribe(FREE)
        return [d.state == "dropped" for d in sim.webhook_deliveries]

    first, again = dropped_pattern(), dropped_pattern()

    assert first == again
    assert 0 < sum(first) < 20


@pytest.fixture
def sim() -> BillingSimulator:
    return make_sim()


@pytest.fixture
async def client(sim: BillingSimulator, aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(sim.app())


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)


# --- listing subscriptions ---------------------------------------------------------------------


async def test_subscriptions_list_items_lack_the_plan_and_filter_as_asked(
    sim: BillingSimulator, api: Api
) -> None:
    live = sim.subscribe(STANDARD, display_name="Live Org")
    gone = sim.subscribe(PROFESSIONAL, display_name="Gone Org")
    sim.state.cancel(gone.subscription_id, at_term_end=False)

    everything = await api.ok("GET", "/subscriptions")
    live_only = await api.ok(
        "GET", "/subscriptions", params={"filter_by": "SubscriptionStatus.LIVE"}
    )
    cancelled = await api.ok(
        "GET", "/subscriptions", params={"filter_by": "SubscriptionStatus.CANCELLED"}
    )
    by_plan = await api.ok("GET", "/subscriptions", params={"plan_code": STANDARD})
    by_product = await api.ok(
        "GET", "/subscriptions", params={"product_id": live.plan.product_id, "per_page": "1"}
    )
    by_customer = await api.ok(
        "GET", "/subscriptions", params={"customer_id": gone.customer.customer_id}
    )
    refused, body = await api.call("GET", "/subscriptions", params={"filter_by": "Status.LIVE"})

    def ids(listed: dict[str, Any]) -> list[str]:
        return [row["subscription_id"] for row in listed["subscriptions"]]

    assert ids(everything) == [gone.subscription_id, live.subscription_id]
    assert all("plan" not in row for row in everything["subscriptions"])
    assert everything["subscriptions"][1]["plan_code"] == STANDARD
    assert ids(live_only) == ids(by_plan) == [live.subscription_id]
    assert ids(cancelled) == ids(by_customer) == [gone.subscription_id]
    assert ids(by_product) == [gone.subscription_id]  # both match; one a page, newest first
    assert (refused, body["code"]) == (400, 4)


# --- lifecycle ---------------------------------------------------------------------------------


async def test_declined_renewal_goes_to_dunning_and_ends_unpaid(
    sim: BillingSimulator, client: Client
) -> None:
    sub = sim.subscribe(STANDARD)
    declined = await client.post(f"{sub_path(sub)}/payments", json={"decline": True})

    sim.set_today(date(2026, 7, 1))
    in_dunning = sub.status
    sim.set_today(date(2026, 7, 4))  # first retry, three days on
    sim.set_today(date(2026, 7, 8))  # last retry, seven days on

    assert (await declined.json())["card_declines"] is True
    assert in_dunning == "dunning"
    assert sub.status == "unpaid"
    assert event_types(sim)[2:] == [
        "subscription_renewed",
        "payment_declined",
        "payment_declined",
        "subscription_unpaid",
    ]
    declined_event = sim.events[3].payload
    assert declined_event["data"]["subscription"]["status"] == "dunning"
    assert declined_event["data"]["payment"]["status"] == "failure"


async def test_dunning_can_end_cancelled_or_recover_when_the_card_is_fixed() -> None:
    sim = make_sim(dunning=DunningPolicy(retry_days=(2,), outcome=DunningOutcome.CANCEL))
    ends = sim.subscribe(STANDARD)
    recovers = sim.subscribe(STANDARD)
    for sub in (ends, recovers):
        sim.state.decline_payments(sub.subscription_id)
    sim.set_today(date(2026, 7, 1))
    sim.state.decline_payments(recovers.subscription_id, False)

    sim.set_today(date(2026, 7, 3))

    assert (ends.status, ends.cancelled_at) == ("cancelled_from_dunning", date(2026, 7, 3))
    assert recovers.status == "live"
    last = [
        (e.event_type, e.payload["data"].get("subscription", {}).get("status"))
        for e in sim.events[-3:]
    ]
    assert last == [
        ("subscription_cancelled", "cancelled_from_dunning"),
        ("subscription_activation", "live"),
        ("payment_thankyou", None),
    ]


async def test_trial_without_a_paying_card_falls_to_the_free_plan(sim: BillingSimulator) -> None:
    sub = sim.subscribe(TRIAL, quantity=3)  # 14 days: June 1 to 14
    sim.state.decline_payments(sub.subscription_id)

    sim.set_today(date(2026, 6, 14))
    scheduled = event_types(sim)[-1]
    sim.set_today(date(2026, 6, 15))

    assert scheduled == "subscription_move_to_free_scheduled"
    assert (sub.status, sub.plan.plan_code) == ("live", FREE)
    moved = sim.events[-1].payload
    assert moved["event_type"] == "subscription_downgraded"
    assert moved["data"]["subscription"]["previous_attribute"]["plan_code"] == TRIAL
    assert moved["event_time"] == "2026-06-15"


async def test_subscription_with_billing_cycles_expires_after_its_last_term(
    sim: BillingSimulator,
) -> None:
    sub = sim.subscribe(STANDARD, billing_cycles=2)

    sim.set_today(date(2026, 7, 1))
    renewed = sub.status
    sim.set_today(date(2026, 8, 1))

    assert renewed == "live"
    assert (sub.status, sub.next_billing_at) == ("expired", None)
    expired = sim.events[-1].payload
    assert (expired["event_type"], expired["event_time"]) == ("subscription_expired", "2026-08-01")
    assert expired["data"]["subscription"]["expires_at"] == "2026-08-01"


async def test_scheduled_pause_starts_on_its_day_and_resumes_on_its_date(
    sim: BillingSimulator, api: Api
) -> None:
    sub = sim.subscribe(STANDARD)
    events_before = len(sim.events)
    body = {"pause_date": "2026-06-10", "resume_date": "2026-06-20"}

    scheduled = await api.ok("POST", f"/subscriptions/{sub.subscription_id}/pause", json=body)
    quiet = len(sim.events) == events_before
    sim.set_today(date(2026, 6, 10))
    paused = sub.status
    sim.set_today(date(2026, 6, 20))

    assert scheduled["subscription"]["status"] == "live"
    assert scheduled["subscription"]["scheduled_pause_date"] == "2026-06-10"
    assert quiet
    assert paused == "paused"
    assert sub.status == "live"
    assert [(e.event_type, e.payload["event_time"]) for e in sim.events[events_before:]] == [
        ("subscription_paused", "2026-06-10"),
        ("subscription_resumed", "2026-06-20"),
    ]


# --- faults: backdating, id types, the request limit -------------------------------------------


async def test_backdated_change_updates_the_record_and_emits_no_event(
    sim: BillingSimulator, client: Client, api: Api
) -> None:
    sim.set_today(date(2026, 6, 1))
    sub = sim.subscribe(STANDARD)
    count = len(sim.events)

    changed = await client.post(
        f"{sub_path(sub)}/backdate", json={"date": "2026-05-20", "plan_code": PROFESSIONAL}
    )
    future = await client.post(f"{sub_path(sub)}/backdate", json={"date": "2026-06-02"})
    read = await api.ok("GET", f"/subscriptions/{sub.subscription_id}")

    assert changed.status == 200
    assert len(sim.events) == count
    assert read["subscription"]["plan"]["plan_code"] == PROFESSIONAL
    assert read["subscription"]["updated_time"] == "2026-05-20T12:00:00+0530"
    assert future.status == 400
    assert "before today" in (await future.json())["error"]


@pytest.mark.parametrize(
    ("style", "numeric"), [("numbers", [True, True]), ("alternate", [False, True])]
)
async def test_ids_can_arrive_as_json_numbers_of_18_digits(
    hook_url: str,
    receiver: Receiver,
    aiohttp_client: ClientFactory,
    style: str,
    numeric: list[bool],
) -> None:
    sim = make_sim(webhook_url=hook_url)
    client, _ = await serve(sim, aiohttp_client)
    await client.post("/_sim/webhooks", json={"ids": style})
    sub = sim.subscribe(STANDARD)
    await sim.wait_until(lambda s: attempts(s) == 2)

    bodies = [post.payload for post in receiver.posts]

    assert [isinstance(body["event_id"], int) for body in bodies] == numeric
    assert [str(body["event_id"]) for body in bodies] == [e.event_id for e in sim.events]
    assert all(int(e.event_id) > 2**53 for e in sim.events)  # a float could not carry them
    created = json.loads(receiver.posts[0].body)["data"]["subscription"]
    plan_id = created["plan"]["plan_id"]
    assert str(plan_id) == sub.plan.plan_id == "2077000000011001"
    assert isinstance(plan_id, int) is numeric[0]
    assert isinstance(created["subscription_id"], str)


async def test_per_minute_limit_answers_429_with_retry_after_until_the_minute_passes(
    aiohttp_client: ClientFactory,
) -> None:
    now = [1000.0]
    sim = make_sim(requests_per_minute=2, clock=lambda: now[0])
    client, api = await serve(sim, aiohttp_client)
    await api.refresh()
    first, _ = await api.call("GET", "/plans")
    now[0] += 20
    second, _ = await api.call("GET", "/plans")

    limited = await client.get("/billing/v1/plans", headers=api.headers())
    token_again = await client.post("/oauth/v2/token", data={"grant_type": "refresh_token"})
    now[0] += 40
    after_a_minute, _ = await api.call("GET", "/plans")

    assert (first, second, limited.status) == (200, 200, 429)
    assert limited.headers["Retry-After"] == "40"
    assert (await limited.json())["code"] == 429
    assert token_again.status == 200  # the token endpoint keeps its own limit
    assert after_a_minute == 200


async def test_request_limit_is_set_and_lifted_over_the_control_route(
    sim: BillingSimulator, client: Client, api: Api
) -> None:
    limited = await client.post("/_sim/faults", json={"per_minute": 1})
    await api.ok("GET", "/plans")
    refused, _ = await api.call("GET", "/plans")
    lifted = await client.post("/_sim/faults", json={"per_minute": 0})
    allowed, _ = await api.call("GET", "/plans")
    typo = await client.post("/_sim/faults", json={"per_minute": -1})

    assert (limited.status, refused, lifted.status, allowed) == (200, 429, 200, 200)
    assert typo.status == 400


async def test_subscriptions_are_created_over_the_control_route(
    sim: BillingSimulator, client: Client
) -> None:
    made = await client.post(
        "/_sim/subscriptions",
        json={"plan_code": STANDARD, "quantity": 3, "zuid": "6001", "zgid": "7001"},
    )
    unknown = await client.post("/_sim/subscriptions", json={"plan_code": "nope"})
    typo = await client.post("/_sim/subscriptions", json={"plan": STANDARD})

    body = await made.json()
    assert made.status == 201
    assert body["subscription"]["plan"]["quantity"] == 3
    assert body["subscription"]["customer"]["custom_field_hash"]["cf_zgid"] == "7001"
    assert event_types(sim) == ["subscription_created", "payment_thankyou"]
    assert unknown.status == 400
    assert "does not exist" in (await unknown.json())["error"]
    assert typo.status == 400
