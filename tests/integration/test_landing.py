"""The Manage Subscription page (docs/contracts.md §2): how it reads its parameters, what it shows,
and how it releases parked subscriptions without letting one org see or take another org's.

Everything runs against the real broker app and the real Developer Console simulator.
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from broker.simulators.platform import PlatformSimulator
from tests.conftest import db_rows, post_event
from tests.support.basics import EMAIL, ZGID, ZUID, eventually, subscription_event
from tests.support.landing import open_page, visitor

Client = TestClient[web.Request, web.Application]

OTHER_ZUID = "60000000002"
OTHER_ZGID = "70000000002"
SUB_A = "100000000000000001"
SUB_B = "100000000000000002"
INTRUDER_EMAIL = "someone.else@example.net"


async def subscription(client: Client, subscription_id: str = SUB_A) -> dict[str, Any]:
    rows = await db_rows(
        client, "SELECT * FROM subscriptions WHERE subscription_id = ?", [subscription_id]
    )
    assert rows, f"no subscriptions row for {subscription_id}"
    return rows[0]


async def deliveries(client: Client) -> list[dict[str, Any]]:
    return await db_rows(client, "SELECT * FROM deliveries ORDER BY id")


async def wait_all_done(client: Client, count: int) -> None:
    async def done() -> bool:
        rows = await deliveries(client)
        return len(rows) == count and all(row["state"] == "done" for row in rows)

    await eventually(done, message=f"{count} deliveries done")


async def deliver_unrelated_event(client: Client, simulator: PlatformSimulator) -> None:
    """A later event with full identity; once its call lands, earlier processing has finished."""
    before = len(simulator.calls)
    event = subscription_event(
        subscription_id="199999999999999999",
        zuid="61111111111",
        zgid="71111111111",
        customer_id="911111111111111111",
        email="marker@example.org",
    )
    response = await post_event(client, event)
    assert response.status == 200
    await simulator.wait_until(lambda s: len(s.calls) == before + 1)
    assert simulator.calls[-1].zgid == "71111111111"


def assert_error_page(response: ClientResponse, text: str, status: int) -> None:
    assert response.status == status, text
    assert response.content_type == "text/html"
    request_id = response.headers["X-Request-ID"]
    assert f"<code>{request_id}</code>" in text


# --- reading the parameters -------------------------------------------------------------------

ID_FORMS = {
    "flat": {"zuid": ZUID, "zgid": ZGID},
    "bracketed": {"custom_fields[zuid]": ZUID, "custom_fields[zgid]": ZGID},
    "dotted": {"custom_fields.zuid": ZUID, "custom_fields.zgid": ZGID},
    "json": {"custom_fields": json.dumps({"zuid": ZUID, "zgid": ZGID})},
    "json_numbers": {"custom_fields": json.dumps({"zuid": int(ZUID), "zgid": int(ZGID)})},
    "cf_prefixed": {"cf_zuid": ZUID, "cf_zgid": ZGID},
}


@pytest.mark.parametrize("style", list(ID_FORMS))
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_landing_reads_ids_in_every_form(broker: Client, style: str, method: str):
    """Query or form post; flat, bracketed, dotted or JSON custom_fields all identify the user."""
    params = {**ID_FORMS[style], "email": EMAIL}
    if method == "GET":
        response, text = await open_page(broker, params)
    else:
        response, text = await open_page(broker, form=params)
    assert response.status == 200, text
    assert response.content_type == "text/html"
    users = await db_rows(broker, "SELECT zuid, zgid, email FROM users")
    assert users == [{"zuid": ZUID, "zgid": ZGID, "email": EMAIL}]


async def test_landing_merges_query_and_form_parameters(broker: Client):
    response, text = await open_page(broker, {"zuid": ZUID}, form={"custom_fields[zgid]": ZGID})
    assert response.status == 200, text
    users = await db_rows(broker, "SELECT zuid, zgid FROM users")
    assert users == [{"zuid": ZUID, "zgid": ZGID}]


@pytest.mark.parametrize("name", ["hostedPageId", "hostedpage_id"])
async def test_landing_accepts_hosted_page_id(broker: Client, name: str):
    response, text = await open_page(broker, visitor(**{name: "2-abcDEF_123"}))
    assert response.status == 200, text


async def test_landing_records_the_visitor(broker: Client):
    params = visitor(
        display_name="Ada O.",
        first_name="Ada",
        last_name="Owner",
        company_name="Example Org",
    )
    response, _ = await open_page(broker, params)
    assert response.status == 200
    users = await db_rows(broker, "SELECT * FROM users")
    assert len(users) == 1
    user = users[0]
    assert {k: user[k] for k in params} == params
    assert user["first_seen_at"] <= user["last_seen_at"]
    assert "Ada O." in (await open_page(broker, params))[1]


async def test_missing_zgid_answers_an_html_page_naming_it(broker: Client):
    response, text = await open_page(broker, {"zuid": ZUID, "email": EMAIL})
    assert_error_page(response, text, 400)
    assert "zgid" in text
    assert "Manage Subscription link" in text
    assert await db_rows(broker, "SELECT * FROM users") == []


INVALID_VISITS = {
    "non_numeric_zuid": {"zuid": "60000abc", "zgid": ZGID},
    "negative_zgid": {"zuid": ZUID, "zgid": "-7"},
    "conflicting_zuid": {"zuid": "1", "custom_fields[zuid]": "2", "zgid": ZGID},
    "conflicting_json_zgid": {
        "zuid": ZUID,
        "zgid": ZGID,
        "custom_fields": json.dumps({"zgid": OTHER_ZGID}),
    },
    "custom_fields_not_object": {"custom_fields": "[1, 2]", "zuid": ZUID, "zgid": ZGID},
    "custom_fields_not_json": {"custom_fields": "{zuid:1", "zuid": ZUID, "zgid": ZGID},
    "invalid_email": {"zuid": ZUID, "zgid": ZGID, "email": "not-an-email"},
    "long_first_name": {"zuid": ZUID, "zgid": ZGID, "first_name": "A" * 5000},
    "long_company_name": {"zuid": ZUID, "zgid": ZGID, "company_name": "C" * 201},
    "bad_subscription_id": {"zuid": ZUID, "zgid": ZGID, "subscription_id": "1; DROP TABLE"},
    "bad_hosted_page_id": {"zuid": ZUID, "zgid": ZGID, "hostedPageId": "<x>"},
}


@pytest.mark.parametrize("case", list(INVALID_VISITS))
async def test_invalid_landing_parameters_answer_400_page(broker: Client, case: str):
    response, text = await open_page(broker, INVALID_VISITS[case])
    assert_error_page(response, text, 400)
    assert await db_rows(broker, "SELECT * FROM users") == []


async def test_repeated_key_with_two_values_answers_400(make_broker):
    """Believing the browser (verify = "none"), the parser still refuses a conflict; signed
    links refuse any repeated name (test_signed_visits)."""
    broker = await make_broker(landing={"verify": "none"})
    pairs = [("zuid", "1"), ("zuid", "2"), ("zgid", ZGID)]
    response, text = await open_page(broker, pairs, sign=False)
    assert_error_page(response, text, 400)
    assert "two different values for zuid" in text


# --- what the page shows ----------------------------------------------------------------------


async def test_page_shows_the_subscription_as_the_broker_knows_it(
    broker: Client, simulator: PlatformSimulator
):
    response = await post_event(broker, subscription_event(quantity=7))
    assert response.status == 200
    await wait_all_done(broker, 1)
    page, text = await open_page(broker, visitor())
    assert page.status == 200
    assert '<h2 id="plan-heading">Pro</h2>' in text
    assert '<span class="status status-live">Live</span>' in text
    assert "<dd>7</dd>" in text
    assert "Monthly" in text
    assert "Up to date" in text
    assert len(simulator.applied) == 1


async def test_page_without_subscription_says_so(broker: Client):
    _, text = await open_page(broker, visitor())
    assert "no subscription yet" in text


HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{7*7}}"]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_visitor_names_are_escaped(broker: Client, value: str):
    response, text = await open_page(broker, visitor(display_name=value, company_name=value))
    assert response.status == 200, text
    assert "<script>" not in text
    assert "<img" not in text
    if value.startswith("<script>"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    elif value.startswith('"'):
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    else:
        assert "{{7*7}}" in text  # shown literally, never evaluated
        assert "49" not in text


async def test_hostile_plan_name_from_billing_is_escaped(broker: Client):
    event = subscription_event()
    event["data"]["subscription"]["plan"]["name"] = "<script>alert('plan')</script>"
    await post_event(broker, event)
    _, text = await open_page(broker, visitor())
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#39;plan&#39;)&lt;/script&gt;" in text


def assert_security_headers(response: ClientResponse) -> None:
    assert response.content_type == "text/html"
    assert "default-src 'none'" in response.headers.get("Content-Security-Policy", "")
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


async def test_page_carries_security_headers(broker: Client):
    response, _ = await open_page(broker, visitor())
    assert response.status == 200
    assert_security_headers(response)


@pytest.mark.parametrize("params", [{"zuid": ZUID}, visitor(zuid="x")])
async def test_error_pages_carry_security_headers(broker: Client, params: dict[str, str]):
    response, _ = await open_page(broker, params)
    assert response.status == 400
    assert_security_headers(response)


async def test_oversized_form_post_answers_413_page(broker: Client):
    body = urlencode({**visitor(), "company_name": "x" * (1024 * 1024 + 10)}).encode()
    response = await broker.post(
        "/manage",
        data=io.BytesIO(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    text = await response.text()
    assert_error_page(response, text, 413)
    assert "Something went wrong" not in text
    assert await db_rows(broker, "SELECT * FROM users") == []


# --- parked subscriptions ---------------------------------------------------------------------


async def park(client: Client, **event: Any) -> None:
    response = await post_event(client, subscription_event(zuid=None, zgid=None, **event))
    assert response.status == 200
    assert (await response.json())["outcome"] == "parked"


async def test_webhook_without_identity_is_parked_without_platform_call(
    broker: Client, simulator: PlatformSimulator
):
    response = await post_event(broker, subscription_event(zuid=None, zgid=None))
    body = await response.json()
    assert response.status == 200
    assert body["outcome"] == "parked"
    assert "zuid and zgid unknown" in body["reason"]
    row = await subscription(broker)
    assert row["state"] == "parked"
    assert "cf_zuid" in row["reason"]
    assert await deliveries(broker) == []
    await deliver_unrelated_event(broker, simulator)
    assert [call.zgid for call in simulator.calls] == ["71111111111"]


async def test_matching_email_visit_releases_parked_subscription(
    broker: Client, simulator: PlatformSimulator
):
    await park(broker)
    page, text = await open_page(
        broker, visitor(OTHER_ZUID, OTHER_ZGID, EMAIL.upper(), subscription_id=SUB_A)
    )
    assert page.status == 200, text
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    call = simulator.applied[0]
    assert (call.method, call.zgid, call.body["zuid"]) == ("POST", OTHER_ZGID, OTHER_ZUID)
    assert call.body["subscription_id"] == SUB_A
    await wait_all_done(broker, 1)
    assert (await subscription(broker))["state"] == "applied"
    _, text = await open_page(broker, visitor(OTHER_ZUID, OTHER_ZGID, EMAIL))
    assert "Up to date" in text


async def test_other_email_visit_leaves_subscription_parked(
    broker: Client, simulator: PlatformSimulator
):
    await park(broker)
    page, _ = await open_page(
        broker, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL, subscription_id=SUB_A)
    )
    assert page.status == 200
    row = await subscription(broker)
    assert row["state"] == "parked"
    assert "email does not match" in row["reason"]
    assert await deliveries(broker) == []
    await deliver_unrelated_event(broker, simulator)
    assert all(call.body["subscription_id"] != SUB_A for call in simulator.calls)


async def test_visit_without_email_leaves_subscription_parked(
    broker: Client, simulator: PlatformSimulator
):
    await park(broker)
    page, _ = await open_page(broker, visitor(email=None, subscription_id=SUB_A))
    assert page.status == 200
    assert (await subscription(broker))["state"] == "parked"
    await deliver_unrelated_event(broker, simulator)
    assert all(call.body["subscription_id"] != SUB_A for call in simulator.calls)


async def test_email_match_can_be_turned_off(make_broker, simulator: PlatformSimulator):
    client = await make_broker(landing={"require_email_match": False})
    await park(client)
    page, _ = await open_page(
        client, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL, subscription_id=SUB_A)
    )
    assert page.status == 200
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    assert (simulator.applied[0].zgid, simulator.applied[0].body["zuid"]) == (
        OTHER_ZGID,
        OTHER_ZUID,
    )


async def test_mismatched_visit_does_not_reveal_parked_subscription(broker: Client):
    """Naming someone's subscription_id with the wrong email must not show its details."""
    event = subscription_event(zuid=None, zgid=None)
    event["data"]["subscription"]["plan"]["name"] = "Secret Gold Plan"
    await post_event(broker, event)
    _, text = await open_page(
        broker, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL, subscription_id=SUB_A)
    )
    assert "Secret Gold Plan" not in text
    _, text = await open_page(broker, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL))
    assert "Secret Gold Plan" not in text


async def test_mismatched_visit_does_not_lock_out_the_owner(
    broker: Client, simulator: PlatformSimulator
):
    """Someone who guesses a parked subscription_id first must not block its real owner."""
    await park(broker)
    await open_page(broker, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL, subscription_id=SUB_A))
    page, text = await open_page(broker, visitor(subscription_id=SUB_A))
    assert page.status == 200, text
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    assert simulator.applied[0].zgid == ZGID


# --- one org can neither see nor change another's ----------------------------------------------


async def test_user_seen_in_one_org_cannot_act_for_another(
    broker: Client, simulator: PlatformSimulator
):
    await park(broker)
    first, _ = await open_page(broker, visitor())
    assert first.status == 200
    users_before = await db_rows(broker, "SELECT * FROM users")
    response, text = await open_page(broker, visitor(zgid=OTHER_ZGID, subscription_id=SUB_A))
    assert_error_page(response, text, 403)
    assert "another organisation" in text
    assert await db_rows(broker, "SELECT * FROM users") == users_before
    row = await subscription(broker)
    assert (row["zgid"], row["zuid"], row["bound_email"]) == (None, None, None)
    assert row["state"] == "parked"
    await deliver_unrelated_event(broker, simulator)
    assert all(call.body["subscription_id"] != SUB_A for call in simulator.calls)


async def test_other_org_cannot_claim_a_subscription_billing_assigned(
    broker: Client, simulator: PlatformSimulator
):
    await post_event(broker, subscription_event())
    await wait_all_done(broker, 1)
    row_before = await subscription(broker)
    response, text = await open_page(
        broker, visitor(OTHER_ZUID, OTHER_ZGID, EMAIL, subscription_id=SUB_A)
    )
    assert_error_page(response, text, 403)
    assert await subscription(broker) == row_before
    assert await db_rows(broker, "SELECT * FROM users WHERE zuid = ?", [OTHER_ZUID]) == []
    assert len(await deliveries(broker)) == 1
    assert [call.zgid for call in simulator.calls] == [ZGID]


async def test_org_page_never_lists_another_orgs_subscription(broker: Client):
    """Even after org B bound the id first, billing's cf_zgid decides whose page shows it."""
    await open_page(broker, visitor(OTHER_ZUID, OTHER_ZGID, EMAIL, subscription_id=SUB_A))
    event_a = subscription_event(subscription_id=SUB_A)
    event_a["data"]["subscription"]["plan"]["name"] = "Org A Gold"
    event_b = subscription_event(
        subscription_id=SUB_B,
        zuid=OTHER_ZUID,
        zgid=OTHER_ZGID,
        customer_id="900000000000000002",
        email=INTRUDER_EMAIL,
    )
    event_b["data"]["subscription"]["plan"]["name"] = "Org B Silver"
    for event in (event_a, event_b):
        assert (await post_event(broker, event)).status == 200
    _, page_b = await open_page(broker, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL))
    _, page_a = await open_page(broker, visitor())
    assert "Org B Silver" in page_b
    assert "Org A Gold" not in page_b
    assert "Org A Gold" in page_a
    assert "Org B Silver" not in page_a


async def test_visit_before_billing_then_identityless_webhook_delivers_on_email_match(
    broker: Client, simulator: PlatformSimulator
):
    page, _ = await open_page(broker, visitor(OTHER_ZUID, OTHER_ZGID, subscription_id=SUB_A))
    assert page.status == 200
    response = await post_event(broker, subscription_event(zuid=None, zgid=None))
    assert (await response.json())["outcome"] == "queued"
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    call = simulator.applied[0]
    assert (call.zgid, call.body["zuid"], call.body["subscription_id"]) == (
        OTHER_ZGID,
        OTHER_ZUID,
        SUB_A,
    )


async def test_visit_before_billing_then_identityless_webhook_stays_parked_on_other_email(
    broker: Client, simulator: PlatformSimulator
):
    page, _ = await open_page(
        broker, visitor(OTHER_ZUID, OTHER_ZGID, INTRUDER_EMAIL, subscription_id=SUB_A)
    )
    assert page.status == 200
    await park(broker)
    row = await subscription(broker)
    assert row["state"] == "parked"
    assert "email does not match" in row["reason"]
    await deliver_unrelated_event(broker, simulator)
    assert all(call.body["subscription_id"] != SUB_A for call in simulator.calls)
