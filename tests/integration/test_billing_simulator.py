"""The Zoho Billing simulator behaves as docs/contracts.md §3, §4 and §5 say, failures included.

Other tests and ``broker demo`` trust this simulator to stand in for Zoho Billing, so each behaviour
is proved here over real HTTP: the simulator's own aiohttp app, and a small receiver app standing in
for the broker's webhook endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from broker.clients.billing import BillingClient
from broker.config import BillingSettings
from broker.errors import BillingNotFound
from broker.simulators.billing import BillingSimulator, pause_credit
from broker.simulators.billing.oauth import TokenIssuer
from tests.support.billing import (
    APP,
    BACK,
    CLIENT_ID,
    CLIENT_SECRET,
    FREE,
    JUNE_1,
    ORG,
    ORG_HEADER,
    PROFESSIONAL,
    REFRESH_TOKEN,
    STANDARD,
    STANDARD_YEARLY,
    STORAGE,
    TRIAL,
    ZAPIKEY,
    Api,
    Client,
    ClientFactory,
    Receiver,
    ServerFactory,
    attempts,
    buyer,
    event_types,
    make_sim,
    token_form,
)

SIGNING_SECRET = "sim-signing-secret-0123456789"
STORAGE_YEARLY = f"{APP}_storage_Y"
ZOHO_TIME = "%Y-%m-%dT%H:%M:%S%z"


@pytest.fixture
def sim() -> BillingSimulator:
    return make_sim()


@pytest.fixture
async def client(sim: BillingSimulator, aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(sim.app())


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def hook_url(receiver: Receiver, aiohttp_server: ServerFactory) -> str:
    server = await aiohttp_server(receiver.app())
    return str(server.make_url("/hook"))


@pytest.fixture
async def hooked(hook_url: str, aiohttp_client: ClientFactory) -> tuple[BillingSimulator, Api]:
    """A simulator that posts signed webhooks with a zapikey to the receiver."""
    sim = make_sim(webhook_url=hook_url, webhook_zapikey=ZAPIKEY, signing_secret=SIGNING_SECRET)
    return sim, Api(await aiohttp_client(sim.app()))


# --- OAuth -------------------------------------------------------------------------------------


async def test_refresh_token_buys_a_bearer_token_that_opens_the_api(
    client: Client, sim: BillingSimulator
) -> None:
    response = await client.post("/oauth/v2/token", data=token_form())
    body = await response.json()

    assert response.status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["api_domain"] == str(client.make_url("")).rstrip("/")
    plans = await client.get(
        "/billing/v1/plans",
        headers={"Authorization": f"Zoho-oauthtoken {body['access_token']}", ORG_HEADER: ORG},
    )
    assert plans.status == 200
    assert sim.token_requests == 1


async def test_token_fields_are_also_read_from_the_query_string(client: Client) -> None:
    response = await client.post("/oauth/v2/token", params=token_form())

    assert "access_token" in await response.json()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"client_id": "1000.OTHER"}, "invalid_client"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"refresh_token": "1000.revoked"}, "invalid_code"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
async def test_bad_credentials_are_refused_with_http_200_and_an_error(
    client: Client, changes: dict[str, str], error: str
) -> None:
    response = await client.post("/oauth/v2/token", data=token_form(**changes))

    assert (response.status, await response.json()) == (200, {"error": error})


async def test_sixth_refresh_within_a_minute_is_denied(
    client: Client, sim: BillingSimulator
) -> None:
    for _ in range(5):
        granted = await client.post("/oauth/v2/token", data=token_form())
        assert "access_token" in await granted.json()

    denied = await client.post("/oauth/v2/token", data=token_form())

    body = await denied.json()
    assert denied.status == 400
    assert body["error"] == "Access Denied"
    assert "too many requests" in body["error_description"]
    assert sim.token_requests == 6


def test_refresh_limit_lifts_once_the_minute_has_passed() -> None:
    now = [1000.0]
    issuer = TokenIssuer(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        ttl_seconds=3600,
        clock=lambda: now[0],
    )
    answers = [issuer.exchange(token_form(), "http://x")[0] for _ in range(6)]
    now[0] += 60

    assert answers == [200] * 5 + [400]
    assert issuer.exchange(token_form(), "http://x")[0] == 200


def test_access_token_stops_working_after_its_lifetime() -> None:
    now = [0.0]
    issuer = TokenIssuer(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        ttl_seconds=10,
        clock=lambda: now[0],
    )
    token = issuer.exchange(token_form(), "http://x")[1]["access_token"]
    valid_before = issuer.is_valid(token)
    now[0] = 10.0

    assert (valid_before, issuer.is_valid(token)) == (True, False)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer {token}", "Zoho-oauthtoken not-a-token", "Zoho-oauthtoken "],
)
async def test_api_refuses_a_missing_or_unknown_token_with_401_code_57(
    api: Api, authorization: str | None
) -> None:
    token = await api.refresh()
    headers = {ORG_HEADER: ORG}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=token)

    status, body = await api.call("GET", "/plans", headers=headers)

    assert (status, body["code"]) == (401, 57)
    assert body["message"] == "You are not authorized to perform this operation"


async def test_expired_tokens_get_401_until_the_caller_refreshes(
    api: Api, sim: BillingSimulator
) -> None:
    await api.ok("GET", "/plans")
    sim.expire_tokens()

    refused, _ = await api.call("GET", "/plans")
    await api.refresh()
    accepted, _ = await api.call("GET", "/plans")

    assert (refused, accepted) == (401, 200)


@pytest.mark.parametrize("organization", [None, "99999999"])
async def test_api_refuses_a_missing_or_foreign_organization_with_code_6041(
    api: Api, organization: str | None
) -> None:
    await api.refresh()
    headers = {"Authorization": f"Zoho-oauthtoken {api.token}"}
    if organization is not None:
        headers[ORG_HEADER] = organization

    status, body = await api.call("GET", "/plans", headers=headers)

    assert (status, body["code"]) == (400, 6041)
    assert body["message"]


async def test_unknown_route_and_method_answer_in_the_zoho_envelope(api: Api) -> None:
    missing = await api.call("GET", "/invoices/1")
    wrong_method = await api.call("DELETE", "/plans")

    assert (missing[0], missing[1]["code"]) == (404, 5)
    assert (wrong_method[0], wrong_method[1]["code"]) == (405, 37)


# --- catalog -----------------------------------------------------------------------------------


async def test_catalog_plans_carry_the_app_domain_prices_and_intervals(api: Api) -> None:
    plans = {p["plan_code"]: p for p in (await api.ok("GET", "/plans"))["plans"]}

    assert set(plans) == {STANDARD, STANDARD_YEARLY, PROFESSIONAL, f"{APP}_1002_Y", FREE, TRIAL}
    standard = plans[STANDARD]
    assert (standard["name"], standard["recurring_price"], standard["interval"]) == (
        "Standard",
        10.0,
        1,
    )
    assert standard["interval_unit"] == "months"
    assert standard["plan_id"].isdigit()
    assert standard["status"] == "active"
    assert standard["product_id"].isdigit()
    assert (plans[STANDARD_YEARLY]["interval_unit"], plans[STANDARD_YEARLY]["price"]) == (
        "years",
        100.0,
    )
    assert plans[TRIAL]["trial_period"] == 14
    assert plans[FREE]["recurring_price"] == 0.0


async def test_plans_paginate_without_page_context_as_documented(api: Api) -> None:
    first = await api.ok("GET", "/plans", params={"page": "1", "per_page": "4"})
    second = await api.ok("GET", "/plans", params={"page": "2", "per_page": "4"})

    assert ("page_context" in first, len(first["plans"]), len(second["plans"])) == (False, 4, 2)


async def test_plans_paginate_with_page_context_when_told_to(
    aiohttp_client: ClientFactory,
) -> None:
    api = Api(await aiohttp_client(make_sim(list_page_context=True).app()))
    first = await api.ok("GET", "/plans", params={"page": "1", "per_page": "4"})
    second = await api.ok("GET", "/plans", params={"page": "2", "per_page": "4"})

    assert (len(first["plans"]), first["page_context"]["has_more_page"]) == (4, True)
    assert (len(second["plans"]), second["page_context"]["has_more_page"]) == (2, False)
    assert second["page_context"] == {"page": 2, "per_page": 4, "has_more_page": False}
    codes = [p["plan_code"] for p in first["plans"] + second["plans"]]
    assert len(set(codes)) == 6


async def test_plan_and_addon_filters_accept_active_and_refuse_unknown_values(api: Api) -> None:
    active = await api.ok("GET", "/plans", params={"filter_by": "PlanStatus.ACTIVE"})
    addons = await api.ok("GET", "/addons", params={"filter_by": "AddonStatus.ACTIVE"})
    status, bad = await api.call("GET", "/plans", params={"filter_by": "PlanStatus.SOMETIMES"})
    bad_page, _ = await api.call("GET", "/plans", params={"page": "0"})

    assert len(active["plans"]) == 6
    assert {(a["addon_code"], a["price"], a["interval_unit"]) for a in addons["addons"]} == {
        (STORAGE, 5.0, "monthly"),
        (STORAGE_YEARLY, 50.0, "yearly"),
    }
    assert (status, bad["code"], bad_page) == (400, 4, 400)


def test_catalog_file_is_chosen_by_the_caller(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "product": {"product_id": "1", "name": "x"},
                "plans": [
                    {
                        "plan_code": "{app_domain}_7",
                        "plan_id": "7",
                        "name": "Seven",
                        "recurring_price": 7.25,
                        "interval_unit": "months",
                    }
                ],
                "addons": [],
            }
        )
    )

    sim = make_sim(app_domain="other", catalog_file=catalog)

    assert list(sim.catalog.plans) == ["other_7"]
    assert sim.catalog.plans["other_7"].recurring_price == Decimal("7.25")


# --- hosted pages and checkout -----------------------------------------------------------------


async def test_new_subscription_checkout_pays_redirects_and_reads_back_as_success(
    api: Api, client: Client, sim: BillingSimulator
) -> None:
    page = await api.open_checkout(STANDARD, 5, addons=[{"addon_code": STORAGE, "quantity": 2}])
    assert page["status"] == "fresh"
    assert page["url"] == str(client.make_url(f"/hostedpages/{page['hostedpage_id']}/checkout"))
    assert page["expiring_time"] > page["created_time"]

    html_response = await client.get(f"/hostedpages/{page['hostedpage_id']}/checkout")
    html = await html_response.text()
    assert html_response.status == 200
    assert 'id="pay"' in html
    assert 'id="fail"' in html
    assert "Standard x 5" in html
    assert "$60.00" in html  # 5 x 10.00 + 2 x 5.00
    opened = await api.ok("GET", f"/hostedpages/{page['hostedpage_id']}")
    assert opened["status"] == "read"  # the buyer has seen it

    paid = await client.post(f"/hostedpages/{page['hostedpage_id']}/pay", allow_redirects=False)
    assert paid.status == 303
    assert paid.headers["Location"] == f"{BACK}&hostedpage_id={page['hostedpage_id']}"

    read = await api.ok("GET", f"/hostedpages/{page['hostedpage_id']}")
    assert (read["status"], read["action"]) == ("success", "new_subscription")
    subscription = read["data"]["subscription"]
    assert subscription["status"] == "live"
    assert subscription["plan"]["plan_code"] == STANDARD
    assert subscription["plan"]["quantity"] == 5
    assert subscription["addons"][0]["addon_code"] == STORAGE
    assert subscription["amount"] == 60.0
    assert subscription["currency_code"] == "USD"
    assert (subscription["current_term_starts_at"], subscription["current_term_ends_at"]) == (
        "2026-06-01",
        "2026-06-30",
    )
    assert subscription["next_billing_at"] == "2026-07-01"
    hash_ = subscription["custom_field_hash"]
    assert (hash_["cf_zuid"], hash_["cf_zgid"]) == ("60000000001", "70000000001")
    assert list(sim.subscriptions) == [subscription["subscription_id"]]
    assert event_types(sim) == ["subscription_created", "payment_thankyou"]


async def test_checkout_html_escapes_what_the_caller_supplied(api: Api, client: Client) -> None:
    page = await api.open_checkout(customer=buyer(display_name='<script>alert("x")</script>'))

    html = await (await client.get(f"/hostedpages/{page['hostedpage_id']}/checkout")).text()

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


async def test_failed_payment_reads_as_failure_and_creates_nothing(
    api: Api, client: Client, sim: BillingSimulator
) -> None:
    page = await api.open_checkout()

    failed = await client.post(f"/hostedpages/{page['hostedpage_id']}/fail", allow_redirects=False)
    read = await api.ok("GET", f"/hostedpages/{page['hostedpage_id']}")

    assert failed.status == 303
    assert f"hostedpage_id={page['hostedpage_id']}" in failed.headers["Location"]
    assert read["status"] == "failed"
    assert read["data"] == {}
    assert (sim.subscriptions, sim.customers, sim.events) == ({}, {}, [])


async def test_used_checkout_shows_a_410_message_instead_of_forms(
    api: Api, client: Client, sim: BillingSimulator
) -> None:
    page = await api.open_checkout()
    await client.post(f"/hostedpages/{page['hostedpage_id']}/pay", allow_redirects=False)

    shown = await client.get(f"/hostedpages/{page['hostedpage_id']}/checkout")
    paid_again = await client.post(f"/hostedpages/{page['hostedpage_id']}/pay")

    assert shown.status == 410
    assert 'id="pay"' not in await shown.text()
    assert paid_again.status == 410
    assert len(sim.subscriptions) == 1


async def test_checkout_without_redirect_url_ends_on_a_plain_page(api: Api, client: Client) -> None:
    page = await api.open_checkout(redirect_url=None)

    paid = await client.post(f"/hostedpages/{page['hostedpage_id']}/pay", allow_redirects=False)

    assert paid.status == 200
    assert "Payment received" in await paid.text()


async def test_hosted_page_older_than_its_lifetime_is_gone(
    aiohttp_client: ClientFactory,
) -> None:
    sim = make_sim(hosted_page_ttl_seconds=0.0)
    client = await aiohttp_client(sim.app())
    api = Api(client)
    page = await api.open_checkout()

    read, body = await api.call("GET", f"/hostedpages/{page['hostedpage_id']}")
    shown = await client.get(f"/hostedpages/{page['hostedpage_id']}/checkout")
    paid = await client.post(f"/hostedpages/{page['hostedpage_id']}/pay")

    # What Zoho answers for an expired page is not documented: the simulator forgets it.
    assert (read, body["code"]) == (404, 1002)
    assert (shown.status, paid.status) == (410, 410)
    assert "expired" in await shown.text()
    assert sim.subscriptions == {}


async def test_expire_hosted_pages_route_expires_open_pages_only(api: Api, client: Client) -> None:
    paid = await api.buy()
    open_page = await api.open_checkout()

    expired = await client.post("/_sim/expire_hosted_pages")
    state = await (await client.get("/_sim/state")).json()

    assert expired.status == 200
    statuses = sorted((p["status"], p["expired"]) for p in state["hosted_pages"])
    assert statuses == [("fresh", True), ("success", False)]
    assert open_page["hostedpage_id"] in {p["hostedpage_id"] for p in state["hosted_pages"]}
    assert state["subscriptions"][0]["subscription_id"] == paid["subscription_id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customer": buyer(), "plan": {"plan_code": f"{APP}_9999"}}, 400, 1001),
        ({"customer_id": "1", "plan": {"plan_code": STANDARD}}, 404, 1002),
        ({"plan": {"plan_code": STANDARD}}, 400, 4),
        ({"customer": buyer(), "plan": {"plan_code": STANDARD, "quantity": 0}}, 400, 4),
        (
            {
                "customer": buyer(),
                "plan": {"plan_code": STANDARD},
                "addons": [{"addon_code": STORAGE_YEARLY, "quantity": 1}],
            },
            400,
            4,
        ),
        ({"customer": buyer(), "plan": {"plan_code": STANDARD}, "redirect_url": "x"}, 400, 4),
    ],
    ids=["unknown-plan", "unknown-customer", "no-customer", "zero-users", "yearly-addon", "url"],
)
async def test_new_subscription_page_refuses_what_zoho_would(
    api: Api, sim: BillingSimulator, body: dict[str, Any], status: int, code: int
) -> None:
    answer = await api.call("POST", "/hostedpages/newsubscription", json=body)

    assert (answer[0], answer[1]["code"]) == (status, code)
    assert answer[1]["message"]
    assert sim.hosted_pages == {}


async def test_returning_customer_buys_again_by_customer_id(
    api: Api, sim: BillingSimulator
) -> None:
    first = await api.buy()

    page = (
        await api.ok(
            "POST",
            "/hostedpages/newsubscription",
            json={"customer_id": first["customer_id"], "plan": {"plan_code": FREE}},
        )
    )["hostedpage"]
    await api.client.post(f"/hostedpages/{page['hostedpage_id']}/pay", allow_redirects=False)
    listed = await api.ok("GET", "/subscriptions", params={"customer_id": first["customer_id"]})
    customer = await api.ok("GET", f"/customers/{first['customer_id']}")

    assert len(sim.customers) == 1
    assert [row["plan_code"] for row in listed["subscriptions"]] == [FREE, STANDARD]
    assert {row["status"] for row in listed["subscriptions"]} == {"live"}
    assert customer["customer"]["customer_id"] == first["customer_id"]


async def test_update_page_changes_the_plan_on_payment(api: Api, sim: BillingSimulator) -> None:
    bought = await api.buy(STANDARD, 5)

    page = (
        await api.ok(
            "POST",
            "/hostedpages/updatesubscription",
            json={
                "subscription_id": bought["subscription_id"],
                "plan": {"plan_code": PROFESSIONAL, "quantity": 8},
                "redirect_url": BACK,
            },
        )
    )["hostedpage"]
    await api.client.post(f"/hostedpages/{page['hostedpage_id']}/pay", allow_redirects=False)
    read = await api.ok("GET", f"/hostedpages/{page['hostedpage_id']}")

    assert read["action"] == "update_subscription"
    assert read["data"]["subscription"]["plan"] == {
        "plan_code": PROFESSIONAL,
        "plan_id": sim.catalog.plans[PROFESSIONAL].plan_id,
        "name": "Professional",
        "price": 20.0,
        "quantity": 8,
    }
    assert event_types(sim)[-1] == "subscription_upgraded"


async def test_trial_plan_starts_in_trial_without_a_payment(
    api: Api, sim: BillingSimulator
) -> None:
    subscription = await api.buy(TRIAL, 3)

    assert subscription["status"] == "trial"
    assert (subscription["trial_starts_at"], subscription["trial_ends_at"]) == (
        "2026-06-01",
        "2026-06-14",
    )
    assert event_types(sim) == ["subscription_created"]


# --- webhooks ----------------------------------------------------------------------------------


async def test_webhooks_carry_zapikey_signature_and_the_default_payload(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, api = hooked
    subscription = await api.buy(STANDARD, 5, addons=[{"addon_code": STORAGE, "quantity": 1}])
    await sim.wait_until(lambda s: attempts(s) == 2)

    created, thanks = receiver.posts
    assert created.headers["zapikey"] == ZAPIKEY
    assert created.headers["Content-Type"] == "application/json"
    expected = hmac.new(SIGNING_SECRET.encode(), created.body, hashlib.sha256).hexdigest()
    assert created.headers["X-Zoho-Webhook-Signature"] == expected
    event = created.payload
    assert event["event_type"] == "subscription_created"
    assert event["event_id"].isdigit()
    assert event["event_source"] == "web"
    assert event["event_time"] == "2026-06-01"
    datetime.strptime(event["created_time"], ZOHO_TIME)  # ISO 8601 with an offset
    data = event["data"]["subscription"]
    assert data["subscription_id"] == subscription["subscription_id"]
    assert data["plan"]["plan_code"] == STANDARD
    fields = {f["api_name"]: f for f in data["custom_fields"]}
    assert (fields["cf_zuid"]["label"], fields["cf_zuid"]["value"]) == ("zuid", "60000000001")
    assert fields["cf_zgid"]["value"] == "70000000001"
    assert data["custom_field_hash"]["cf_zgid_unformatted"] == "70000000001"
    assert thanks.payload["event_type"] == "payment_thankyou"
    assert thanks.payload["data"]["payment"]["amount"] == 55.0
    assert int(thanks.payload["event_id"]) > int(event["event_id"])
    assert [(d.event_type, d.state, d.status, d.attempts) for d in sim.webhook_deliveries] == [
        ("subscription_created", "delivered", 200, 1),
        ("payment_thankyou", "delivered", 200, 1),
    ]


async def test_signature_also_covers_the_webhook_urls_query_pairs(
    hook_url: str, receiver: Receiver, aiohttp_client: ClientFactory
) -> None:
    """docs/contracts.md section 3: sorted ``keyvalue`` query pairs, then the raw body."""
    sim = make_sim(webhook_url=f"{hook_url}?name=basic&id=90343", signing_secret=SIGNING_SECRET)
    await aiohttp_client(sim.app())
    sim.subscribe(FREE)
    await sim.wait_until(lambda s: attempts(s) == 1)

    post = receiver.posts[0]
    signed = b"id90343namebasic" + post.body
    expected = hmac.new(SIGNING_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert post.headers["X-Zoho-Webhook-Signature"] == expected
    assert "zapikey" not in post.headers


async def test_events_api_lists_newest_first_and_returns_what_was_sent(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, api = hooked
    await api.buy(STANDARD)
    await api.buy(FREE)
    await sim.wait_until(lambda s: attempts(s) == 3)

    listed = await api.ok("GET", "/events")
    typed = await api.ok("GET", "/events", params={"event_type": "subscription_created"})
    one = await api.ok("GET", f"/events/{receiver.posts[0].payload['event_id']}")
    missing, _ = await api.call("GET", "/events/1")

    ids = [int(e["event_id"]) for e in listed["events"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3
    assert typed == listed  # no filter is documented: an unknown parameter changes nothing
    event = one["event"]
    assert json.loads(event.pop("payload")) == receiver.posts[0].payload  # the documented shape
    assert [hook["status"] for hook in event.pop("webhooks")] == ["success"]
    sent = receiver.posts[0].payload
    assert event == {k: sent[k] for k in ("event_id", "event_type", "event_time")}
    assert missing == 404


async def test_held_webhooks_wait_and_then_go_out_in_order(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, _ = hooked
    sim.hold_webhooks()
    sim.subscribe(FREE)
    sim.subscribe(FREE)
    held = [d.state for d in sim.webhook_deliveries]

    sim.release_webhooks()
    await sim.wait_until(lambda s: attempts(s) == 2)

    assert held == ["held", "held"]
    assert receiver.posts[0].payload["event_id"] < receiver.posts[1].payload["event_id"]
    assert [e.event_id for e in sim.events] == [p.payload["event_id"] for p in receiver.posts]


async def test_dropped_webhook_is_never_sent_until_resent_with_the_same_event_id(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, api = hooked
    sim.drop_next_webhooks(1)
    sim.subscribe(FREE)
    sim.subscribe(FREE)
    await sim.wait_until(lambda s: attempts(s) == 1)  # the second went out: the first never will

    dropped = sim.webhook_deliveries[0]
    assert (dropped.state, dropped.status, dropped.attempts) == ("dropped", None, 0)
    assert [p.payload["event_id"] for p in receiver.posts] == [sim.events[1].event_id]

    resent = await api.client.post(f"/_sim/events/{dropped.event_id}/resend")
    await sim.wait_until(lambda s: attempts(s) == 2)

    assert resent.status == 200
    assert receiver.posts[1].body == sim.events[0].body
    assert (dropped.state, dropped.status, dropped.attempts) == ("delivered", 200, 1)


async def test_resend_posts_the_same_bytes_again(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, _ = hooked
    sim.subscribe(FREE)
    await sim.wait_until(lambda s: attempts(s) == 1)

    sim.resend(sim.events[0].event_id)
    await sim.wait_until(lambda s: attempts(s) == 2)

    assert receiver.posts[0].body == receiver.posts[1].body
    assert sim.webhook_deliveries[0].attempts == 2


async def test_refused_webhook_is_recorded_and_not_retried(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, _ = hooked
    receiver.status = 500
    sim.subscribe(FREE)
    await sim.wait_until(lambda s: attempts(s) == 1)
    receiver.status = 200
    sim.subscribe(FREE)
    await sim.wait_until(lambda s: attempts(s) == 2)  # a later event went out: no retry came

    assert [(d.state, d.status, d.attempts) for d in sim.webhook_deliveries] == [
        ("failed", 500, 1),
        ("delivered", 200, 1),
    ]
    assert len(receiver.posts) == 2


async def test_unreachable_webhook_url_is_recorded_with_status_0(
    aiohttp_client: ClientFactory, unused_tcp_port: int
) -> None:
    sim = make_sim(webhook_url=f"http://127.0.0.1:{unused_tcp_port}/hook")
    await aiohttp_client(sim.app())
    sim.subscribe(FREE)

    await sim.wait_until(lambda s: attempts(s) == 1)

    assert [(d.state, d.status) for d in sim.webhook_deliveries] == [("failed", 0)]


async def test_webhook_control_route_holds_drops_and_releases(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, api = hooked
    client = api.client
    assert (await client.post("/_sim/webhooks", json={"hold": True, "drop_next": 1})).status == 200
    sim.subscribe(FREE)
    sim.subscribe(FREE)
    states = [d.state for d in sim.webhook_deliveries]

    assert (await client.post("/_sim/webhooks", json={"hold": False})).status == 200
    await sim.wait_until(lambda s: attempts(s) == 1)
    listed = await (await client.get("/_sim/webhooks")).json()
    bad = await client.post("/_sim/webhooks", json={"hold": "yes"})

    assert states == ["dropped", "held"]
    assert [w["state"] for w in listed["webhooks"]] == ["dropped", "delivered"]
    assert bad.status == 400


# --- subscription actions ----------------------------------------------------------------------


async def test_plan_change_sends_upgraded_or_downgraded_with_previous_attribute(
    api: Api, sim: BillingSimulator
) -> None:
    sub = await api.buy(STANDARD, 5)
    path = f"/subscriptions/{sub['subscription_id']}"

    up = await api.ok("PUT", path, json={"plan": {"plan_code": PROFESSIONAL, "quantity": 5}})
    down = await api.ok("PUT", path, json={"plan": {"plan_code": PROFESSIONAL, "quantity": 2}})

    assert (up["subscription"]["amount"], down["subscription"]["amount"]) == (100.0, 40.0)
    upgraded, downgraded, credited = (e.payload for e in sim.events[-3:])
    # The whole term is left on the day of purchase: 100.00 - 40.00 comes back as a credit note.
    assert credited["event_type"] == "creditnote_added"
    assert credited["data"]["creditnote"]["total"] == 60.0
    assert upgraded["event_type"] == "subscription_upgraded"
    assert upgraded["data"]["subscription"]["previous_attribute"] == {
        "status": "live",
        "quantity": 5,
        "plan_code": STANDARD,
        "plan_id": sim.catalog.plans[STANDARD].plan_id,
        "plan_name": "Standard",
    }
    assert downgraded["event_type"] == "subscription_downgraded"
    assert downgraded["data"]["subscription"]["previous_attribute"]["quantity"] == 5
    assert downgraded["data"]["subscription"]["plan"]["quantity"] == 2
    read = await api.ok("GET", path)
    assert "previous_attribute" not in read["subscription"]


async def test_plan_change_to_yearly_starts_a_new_term_and_needs_yearly_addons(
    api: Api, sim: BillingSimulator
) -> None:
    sim.set_today(date(2026, 6, 10))
    sub = await api.buy(STANDARD, 2, addons=[{"addon_code": STORAGE, "quantity": 1}])
    path = f"/subscriptions/{sub['subscription_id']}"

    refused = await api.call("PUT", path, json={"plan": {"plan_code": STANDARD_YEARLY}})
    changed = await api.ok(
        "PUT",
        path,
        json={
            "plan": {"plan_code": STANDARD_YEARLY},
            "addons": [{"addon_code": STORAGE_YEARLY, "quantity": 1}],
            "end_of_term": True,
        },
    )

    assert (refused[0], refused[1]["code"]) == (400, 4)
    yearly = changed["subscription"]
    assert (yearly["interval_unit"], yearly["plan"]["quantity"], yearly["end_of_term"]) == (
        "years",
        2,
        True,
    )
    assert (yearly["current_term_starts_at"], yearly["current_term_ends_at"]) == (
        "2026-06-10",
        "2027-06-09",
    )
    assert event_types(sim)[-1] == "subscription_upgraded"


async def test_unknown_subscription_is_404_code_1002_on_every_action(api: Api) -> None:
    answers = [
        await api.call("GET", "/subscriptions/123"),
        await api.call("PUT", "/subscriptions/123", json={}),
        await api.call("POST", "/subscriptions/123/cancel", params={"cancel_at_end": "false"}),
        await api.call("POST", "/subscriptions/123/reactivate"),
        await api.call("POST", "/subscriptions/123/pause"),
        await api.call("POST", "/subscriptions/123/resume"),
        await api.call("POST", "/hostedpages/updatesubscription", json={"subscription_id": 123}),
    ]

    assert {(status, body["code"]) for status, body in answers} == {(404, 1002)}
    assert answers[0][1]["message"] == "Subscription does not exist."


async def test_cancel_at_term_end_schedules_and_reactivate_removes_it(
    api: Api, sim: BillingSimulator
) -> None:
    sub = await api.buy()
    path = f"/subscriptions/{sub['subscription_id']}"

    scheduled = await api.ok("POST", f"{path}/cancel", params={"cancel_at_end": "true"})
    again = await api.call("POST", f"{path}/cancel", params={"cancel_at_end": "true"})
    removed = await api.ok("POST", f"{path}/reactivate")

    assert scheduled["subscription"]["status"] == "non_renewing"
    assert (again[0], again[1]["code"]) == (400, 2001)
    assert removed["subscription"]["status"] == "live"
    assert event_types(sim)[-2:] == [
        "subscription_cancellation_scheduled",
        "subscription_scheduled_cancellation_removed",
    ]


async def test_cancel_now_can_be_reactivated_within_the_term_only(
    api: Api, sim: BillingSimulator
) -> None:
    first, second = await api.buy(), await api.buy()
    one, two = (f"/subscriptions/{s['subscription_id']}" for s in (first, second))

    cancelled = await api.ok("POST", f"{one}/cancel", params={"cancel_at_end": "false"})
    twice = await api.call("POST", f"{one}/cancel", params={"cancel_at_end": "false"})
    sim.set_today(date(2026, 6, 30))
    back = await api.ok("POST", f"{one}/reactivate")
    await api.ok("POST", f"{two}/cancel", params={"cancel_at_end": "false"})
    sim.set_today(date(2026, 7, 1))
    too_late = await api.call("POST", f"{two}/reactivate")

    assert cancelled["subscription"]["status"] == "cancelled"
    assert cancelled["subscription"]["cancelled_at"] == "2026-06-01"
    assert (twice[0], twice[1]["message"]) == (400, "The subscription has already been cancelled.")
    assert back["subscription"]["status"] == "live"
    assert back["subscription"]["current_term_ends_at"] == "2026-06-30"  # same billing dates
    assert (too_late[0], too_late[1]["code"]) == (400, 2001)
    assert "cannot be reactivated" in too_late[1]["message"]
    assert sim.subscriptions[second["subscription_id"]].status == "cancelled"
    assert "subscription_reactivated" in event_types(sim)


async def test_cancel_needs_an_explicit_cancel_at_end(api: Api) -> None:
    sub = await api.buy()

    status, body = await api.call("POST", f"/subscriptions/{sub['subscription_id']}/cancel")

    assert (status, body["code"]) == (400, 4)


async def test_pause_and_resume_move_status_and_send_their_events(
    api: Api, sim: BillingSimulator
) -> None:
    sub = await api.buy()
    path = f"/subscriptions/{sub['subscription_id']}"

    premature = await api.call("POST", f"{path}/resume")
    paused = await api.ok("POST", f"{path}/pause")
    twice = await api.call("POST", f"{path}/pause")
    changed = await api.call("PUT", path, json={"plan": {"plan_code": PROFESSIONAL}})
    resumed = await api.ok("POST", f"{path}/resume")

    assert (paused["subscription"]["status"], paused["subscription"]["paused_at"]) == (
        "paused",
        "2026-06-01",
    )
    assert resumed["subscription"]["status"] == "live"
    assert [premature[0], twice[0], changed[0]] == [400, 400, 400]
    assert "resume it first" in changed[1]["message"]
    assert event_types(sim)[-2:] == ["subscription_paused", "subscription_resumed"]


@pytest.mark.parametrize(
    ("pause_body", "message"),
    [
        ({"pause_date": "2026-05-31"}, "past"),
        ({"pause_date": "2026-06-03", "resume_date": "2026-06-02"}, "after"),
        ({"resume_date": "2026-06-01"}, "after"),
        ({"pause_date": "June"}, "pause_date"),
    ],
)
async def test_pause_refuses_dates_it_cannot_honour(
    api: Api, pause_body: dict[str, str], message: str
) -> None:
    sub = await api.buy()

    status, body = await api.call(
        "POST", f"/subscriptions/{sub['subscription_id']}/pause", json=pause_body
    )

    assert (status, body["code"]) == (400, 4)
    assert message in body["message"]


@pytest.mark.parametrize(
    ("plan", "users", "start", "pause_on", "resume_on", "credit"),
    [
        # $300 for June (30 days), paused June 10 to June 15: 5 days x $10.
        (STANDARD, 30, date(2026, 6, 1), date(2026, 6, 10), date(2026, 6, 15), "50.00"),
        # $3500 over 365 days, 60 days paused: Zoho's $9.58 a day x 60 = $574.80.
        (STANDARD_YEARLY, 35, date(2025, 1, 1), date(2025, 3, 1), date(2025, 4, 30), "574.80"),
        # Paused June 15, resumed July 5 on a June 1-30 term: only June 15-30 was paid, 16 days.
        (STANDARD, 30, date(2026, 6, 1), date(2026, 6, 15), date(2026, 7, 5), "160.00"),
    ],
    ids=["monthly-5-days", "yearly-60-days", "resumed-after-term"],
)
async def test_resume_credits_the_paid_days_the_pause_left_unused(
    aiohttp_client: ClientFactory,
    plan: str,
    users: int,
    start: date,
    pause_on: date,
    resume_on: date,
    credit: str,
) -> None:
    """docs/contracts.md section 5's three pause-credit examples, through the API."""
    sim = make_sim(today=start)
    api = Api(await aiohttp_client(sim.app()))
    sub = sim.subscribe(plan, quantity=users)
    path = f"/subscriptions/{sub.subscription_id}"

    sim.set_today(pause_on)
    await api.ok("POST", f"{path}/pause")
    sim.set_today(resume_on)
    resumed = (await api.ok("POST", f"{path}/resume"))["subscription"]

    assert sub.last_pause_credit == Decimal(credit)
    assert resumed["last_pause_credit"] == float(credit)


def test_pause_credit_cuts_the_day_rate_to_the_cent_as_zohos_example_does() -> None:
    """Zoho's worked example: $3500 a year / 365 days = $9.58 a day, x 60 days = $574.80."""
    yearly = pause_credit(
        Decimal("3500"), date(2025, 1, 1), date(2025, 12, 31), date(2025, 3, 1), date(2025, 4, 30)
    )

    assert yearly == Decimal("574.80")


async def test_resuming_after_the_term_starts_a_new_term_paid_partly_by_the_credit(
    sim: BillingSimulator, api: Api
) -> None:
    sub = sim.subscribe(STANDARD, quantity=30)
    sim.set_today(date(2026, 6, 15))
    await api.ok("POST", f"/subscriptions/{sub.subscription_id}/pause")
    sim.set_today(date(2026, 7, 5))

    resumed = (await api.ok("POST", f"/subscriptions/{sub.subscription_id}/resume"))["subscription"]

    assert (resumed["current_term_starts_at"], resumed["current_term_ends_at"]) == (
        "2026-07-05",
        "2026-08-04",
    )
    payment = sim.events[-1].payload["data"]["payment"]
    assert payment["amount"] == 140.0  # 300 - 160 credit
    assert resumed["credits"] == 0.0
    assert "subscription_renewed" not in event_types(sim)  # a paused subscription did not renew


async def test_scheduled_resume_date_resumes_when_the_day_comes(
    sim: BillingSimulator, api: Api
) -> None:
    sub = sim.subscribe(STANDARD, quantity=30)
    sim.set_today(date(2026, 6, 10))
    await api.ok(
        "POST", f"/subscriptions/{sub.subscription_id}/pause", json={"resume_date": "2026-06-15"}
    )

    sim.set_today(date(2026, 6, 20))

    assert sub.status == "live"
    assert sub.last_pause_credit == Decimal("50.00")
    assert sim.events[-1].payload["event_time"] == "2026-06-15"


# --- the calendar ------------------------------------------------------------------------------


async def test_passing_the_term_end_renews_charges_and_moves_the_dates(
    client: Client, sim: BillingSimulator
) -> None:
    sub = sim.subscribe(STANDARD, quantity=3)

    moved = await client.post("/_sim/today", json={"date": "2026-07-01"})

    assert (await moved.json()) == {"ok": True, "today": "2026-07-01"}
    assert event_types(sim)[-2:] == ["subscription_renewed", "payment_thankyou"]
    assert (sub.term_start, sub.term_end, sub.next_billing_at) == (
        date(2026, 7, 1),
        date(2026, 7, 31),
        date(2026, 8, 1),
    )
    assert (await client.post("/_sim/today", json={"date": "July"})).status == 400


async def test_trial_end_activates_and_non_renewing_ends_cancelled(sim: BillingSimulator) -> None:
    trial = sim.subscribe(TRIAL, quantity=2)
    ending = sim.subscribe(STANDARD)
    sim.state.cancel(ending.subscription_id, at_term_end=True)

    sim.set_today(date(2026, 7, 1))

    assert (trial.status, trial.activated_at) == ("live", date(2026, 6, 15))
    assert (ending.status, ending.cancelled_at) == ("cancelled", date(2026, 7, 1))
    kinds = [(e.event_type, e.payload["event_time"]) for e in sim.events]
    assert ("subscription_activation", "2026-06-15") in kinds
    assert ("subscription_cancelled", "2026-07-01") in kinds


async def test_every_change_gets_a_strictly_later_updated_time(
    api: Api, sim: BillingSimulator
) -> None:
    sub = await api.buy()
    path = f"/subscriptions/{sub['subscription_id']}"
    await api.ok("PUT", path, json={"plan": {"plan_code": PROFESSIONAL}})
    await api.ok("POST", f"{path}/cancel", params={"cancel_at_end": "true"})
    await api.ok("POST", f"{path}/reactivate")
    await api.ok("POST", f"{path}/pause")
    await api.ok("POST", f"{path}/resume")
    sim.set_today(date(2026, 5, 1))  # even a calendar moved backwards cannot repeat a stamp
    await api.ok("POST", f"{path}/cancel", params={"cancel_at_end": "false"})

    stamps = [
        datetime.strptime(e.payload["data"]["subscription"]["updated_time"], ZOHO_TIME)
        for e in sim.events
        if "subscription" in e.payload["data"]
    ]
    assert len(stamps) == 7
    assert all(earlier < later for earlier, later in itertools.pairwise(stamps))
    read = await api.ok("GET", path)
    assert read["subscription"]["updated_time"] == sim.events[-1].payload["created_time"]


# --- faults ------------------------------------------------------------------------------------


async def test_scripted_429_carries_retry_after_then_calls_succeed(
    api: Api, sim: BillingSimulator
) -> None:
    await api.refresh()
    sim.fail_next(1, 429, retry_after=2)

    limited = await api.client.get("/billing/v1/plans", headers=api.headers())
    recovered, _ = await api.call("GET", "/plans")

    assert limited.status == 429
    assert limited.headers["Retry-After"] == "2"
    assert await limited.json() == {"code": 429, "message": "Too many requests"}
    assert recovered == 200


async def test_scripted_failures_spare_the_token_endpoint(api: Api, sim: BillingSimulator) -> None:
    sim.fail_next(1, 503)

    token = await api.refresh()
    failed, body = await api.call("GET", "/plans")

    assert token
    assert (failed, body["code"]) == (503, 503)


async def test_down_drops_api_and_token_connections_but_not_controls(
    api: Api, client: Client, sim: BillingSimulator
) -> None:
    await api.refresh()
    sim.go_down()

    with pytest.raises(aiohttp.ClientConnectionError):
        await client.get("/billing/v1/plans", headers=api.headers())
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post("/oauth/v2/token", data=token_form())
    state = await client.get("/_sim/state")
    sim.come_up()
    status, _ = await api.call("GET", "/plans")

    assert state.status == 200
    assert status == 200


async def test_delayed_call_whose_client_gave_up_is_never_applied(
    api: Api, client: Client, sim: BillingSimulator
) -> None:
    sub = await api.buy()
    sim.set_delay(30)

    with pytest.raises(TimeoutError):
        await client.post(
            f"/billing/v1/subscriptions/{sub['subscription_id']}/cancel",
            params={"cancel_at_end": "false"},
            headers=api.headers(),
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    await sim.wait_until(lambda s: s.abandoned_requests == 1)

    assert sim.subscriptions[sub["subscription_id"]].status == "live"


async def test_slow_call_that_the_client_waits_for_is_answered(
    api: Api, sim: BillingSimulator
) -> None:
    await api.refresh()
    sim.set_delay(0.05)

    status, _ = await api.call("GET", "/plans")

    assert status == 200
    assert sim.abandoned_requests == 0


async def test_faults_control_route_scripts_and_validates(
    api: Api, client: Client, sim: BillingSimulator
) -> None:
    await api.refresh()
    scripted = await client.post("/_sim/faults", json={"fail_next": 1, "status": 500})
    failed, _ = await api.call("GET", "/plans")
    typo = await client.post("/_sim/faults", json={"fail_nxt": 1})
    lonely = await client.post("/_sim/faults", json={"status": 500})

    assert scripted.status == 200
    assert failed == 500
    assert (typo.status, lonely.status) == (400, 400)


async def test_wait_until_times_out_naming_what_it_saw(sim: BillingSimulator) -> None:
    sim.subscribe(FREE)

    with pytest.raises(TimeoutError, match="events: subscription_created"):
        await sim.wait_until(lambda s: len(s.events) == 5, timeout=0.01)


# --- secrets and the broker's own client -------------------------------------------------------


async def test_no_secret_reaches_a_log_line(
    hooked: tuple[BillingSimulator, Api], receiver: Receiver
) -> None:
    sim, api = hooked
    with capture_logs() as logs:
        await api.refresh()
        await api.client.post("/oauth/v2/token", params=token_form(client_secret="wrong"))
        await api.buy()
        await sim.wait_until(lambda s: attempts(s) == 2)

    text = repr(logs)
    assert "billing_webhook_sent" in text
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, ZAPIKEY, SIGNING_SECRET, str(api.token), "wrong"):
        assert secret not in text


async def test_the_brokers_billing_client_works_against_the_simulator(
    aiohttp_server: ServerFactory,
) -> None:
    """The broker's own client (docs/contracts.md section 4) reads, refreshes and retries here."""
    sim = make_sim()
    server = await aiohttp_server(sim.app())
    origin = str(server.make_url("")).rstrip("/")
    settings = BillingSettings(
        base_url=f"{origin}/billing/v1",
        accounts_url=origin,
        organization_id=ORG,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
        initial_backoff_seconds=0.01,
        max_backoff_seconds=0.02,
        max_retry_after_seconds=0.05,
    )
    sub = sim.subscribe(STANDARD, quantity=4, zuid="60000000001", zgid="70000000001")

    async with aiohttp.ClientSession() as session:
        billing = BillingClient(session, settings)
        plans = await billing.list_plans()
        sim.expire_tokens()
        read = await billing.get_subscription(sub.subscription_id)
        sim.fail_next(1, 429, retry_after=0.01)
        listed = await billing.request(
            "GET", "/subscriptions", params={"customer_id": sub.customer.customer_id}
        )
        with pytest.raises(BillingNotFound):
            await billing.get_subscription("404")

    assert len(plans) == 6
    assert read is not None
    assert read.customer is not None
    assert read.customer.custom_field_hash["cf_zuid"] == "60000000001"
    assert [row["subscription_id"] for row in listed["subscriptions"]] == [sub.subscription_id]
    assert sim.token_requests == 2


@pytest.mark.parametrize(
    ("day_rate_first", "credit"),
    [
        # Zoho's help, "Proration": $100/31 x 16 = $51.61, $50/31 x 16 = $25.81, net $25.80.
        (False, 25.80),
        # A day rate rounded first: 3.23 x 16 = 51.68, 1.61 x 16 = 25.76, net 25.92.
        (True, 25.92),
    ],
)
async def test_a_downgrade_mid_term_issues_the_prorated_credit_note(
    api: Api, sim: BillingSimulator, day_rate_first: bool, credit: float
) -> None:
    sim.set_today(date(2026, 7, 10))  # a 31-day term: July 10..August 9
    sub = await api.buy(STANDARD, 10)  # 100.00 a month
    sim.round_day_rate_first(day_rate_first)
    sim.set_today(date(2026, 7, 25))  # July 25..August 9: 16 days left
    path = f"/subscriptions/{sub['subscription_id']}"
    await api.ok("PUT", path, json={"plan": {"plan_code": STANDARD, "quantity": 5}})
    downgraded, credited = (e.payload for e in sim.events[-2:])
    assert downgraded["event_type"] == "subscription_downgraded"
    assert credited["event_type"] == "creditnote_added"
    assert credited["data"]["creditnote"]["total"] == credit
    assert credited["data"]["creditnote"]["subscription_id"] == sub["subscription_id"]


# --- the daily limit -----------------------------------------------------------------------------


async def test_past_its_daily_limit_the_api_answers_429_with_code_1070_until_the_next_day(
    client: Client, sim: BillingSimulator, api: Api
) -> None:
    sim.limit_daily_requests(2)
    assert (await api.call("GET", "/plans"))[0] == 200
    assert (await api.call("GET", "/plans"))[0] == 200
    response = await client.get("/billing/v1/plans", headers=api.headers())
    assert response.status == 429
    assert (await response.json())["code"] == 1070  # one of Zoho's quota codes
    assert "Retry-After" not in response.headers  # a day does not end in seconds
    sim.set_today(JUNE_1 + timedelta(days=1))
    assert (await api.call("GET", "/plans"))[0] == 200
