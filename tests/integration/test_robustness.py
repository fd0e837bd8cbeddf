"""Bad input gets a clear 4xx, never a 500: raw non-ASCII headers, ids that are not Zoho ids,
unbounded quantities, and an ``updated_time`` from the far future that would freeze a
subscription.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.app import create_app
from broker.simulators.platform import PlatformSimulator
from broker.store.pipeline import ingest_billing_read
from broker.web.appkeys import settings_key, store_key
from tests.conftest import db_rows, fast_settings, post_event
from tests.support.basics import ZAPIKEY, body_of, subscription_event

Client = TestClient[web.Request, web.Application]

SIGNING_SECRET = "robust-signing-secret-42"


async def raw_post(client: Client, headers: list[bytes], body: bytes) -> tuple[int, Any]:
    """POST with header bytes exactly as given (aiohttp's client would re-encode them)."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = [
        b"POST /webhooks/billing HTTP/1.1",
        b"Host: broker",
        b"Content-Type: application/json",
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
        *headers,
    ]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload)


@pytest.mark.parametrize(
    "header",
    [
        b"zapikey: caf\xe9-latin1",  # not UTF-8: aiohttp hands it over surrogate-escaped
        b"zapikey: \xff\xfe",
        "zapikey: ключ".encode(),
    ],
    ids=["latin1", "invalid-utf8", "cyrillic-utf8"],
)
async def test_non_ascii_zapikey_header_is_refused_with_401(broker: Client, header: bytes) -> None:
    status, body = await raw_post(broker, [header], body_of(subscription_event()))
    assert status == 401
    assert body["error"] == "unauthenticated"
    assert "zapikey" in body["message"]
    assert await db_rows(broker, "SELECT * FROM webhook_events") == []


@pytest.mark.parametrize(
    "signature", [b"\xe9" * 64, b"\xff\xfe", "подпись".encode()], ids=["latin1", "bad", "utf8"]
)
async def test_non_ascii_signature_header_is_refused_with_401(
    make_broker: Any, signature: bytes
) -> None:
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    headers = [b"zapikey: " + ZAPIKEY.encode(), b"X-Zoho-Webhook-Signature: " + signature]
    status, body = await raw_post(client, headers, body_of(subscription_event()))
    assert status == 401
    assert body["error"] == "unauthenticated"
    assert "signature" in body["message"]
    assert await db_rows(client, "SELECT * FROM webhook_events") == []


# --- ids, quantities ---------------------------------------------------------------------------

NOT_ZOHO_IDS = ["../../x", "12a", "١٢٣", "१२", "1 OR 1=1", "-5", "9" * 40]


def with_subscription(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    event["data"]["subscription"].update(changes)
    return event


@pytest.mark.parametrize("bad", NOT_ZOHO_IDS)
@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("data.subscription.subscription_id", lambda e, v: with_subscription(e, subscription_id=v)),
        ("data.subscription.customer_id", lambda e, v: with_subscription(e, customer_id=v)),
        (
            "data.subscription.customer.customer_id",
            lambda e, v: e["data"]["subscription"]["customer"].update(customer_id=v) or e,
        ),
        (
            "data.subscription.plan.plan_id",
            lambda e, v: e["data"]["subscription"]["plan"].update(plan_id=v) or e,
        ),
    ],
    ids=["subscription_id", "customer_id", "customer.customer_id", "plan_id"],
)
async def test_id_that_is_not_a_zoho_id_is_refused_with_400_naming_the_field(
    broker: Client, field: str, change: Any, bad: str
) -> None:
    response = await post_event(broker, change(subscription_event(), bad))
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_payload"
    assert any(problem.startswith(field + ":") for problem in body["details"]["problems"]), body
    assert await db_rows(broker, "SELECT * FROM webhook_events") == []


async def test_ids_as_long_json_numbers_are_still_accepted(broker: Client) -> None:
    event = subscription_event()
    event["data"]["subscription"]["plan"]["plan_id"] = 500000000000000001
    event["data"]["subscription"]["customer_id"] = 900000000000000001
    response = await post_event(broker, event)
    assert response.status == 200


@pytest.mark.parametrize("custom_field", ["zuid", "zgid"])
@pytest.mark.parametrize("bad", ["१२३४५", "\uff11\uff12\uff13", "12345678901234567890123", "-12"])
async def test_zuid_or_zgid_that_is_not_ascii_digits_is_never_used(
    broker: Client, custom_field: str, bad: str
) -> None:
    """`str.isdigit` accepts Devanagari and full-width digits; a platform path must not."""
    response = await post_event(broker, subscription_event(**{custom_field: bad}))
    assert response.status == 200
    body = await response.json()
    assert body["outcome"] == "parked"
    assert await db_rows(broker, "SELECT * FROM deliveries") == []
    [customer] = await db_rows(broker, "SELECT zuid, zgid FROM customers")
    assert customer[custom_field] is None


@pytest.mark.parametrize(
    ("field", "event"),
    [
        ("data.subscription.plan.quantity", subscription_event(quantity=1_000_001)),
        ("data.subscription.plan.quantity", subscription_event(quantity=10**30)),
        ("data.subscription.plan.quantity", subscription_event(quantity=-1)),
        (
            "data.subscription.addons.0.quantity",
            subscription_event(addons=[{"addon_code": "testapp_storage", "quantity": 2_000_000}]),
        ),
    ],
    ids=["plan-over-a-million", "plan-huge", "plan-negative", "addon-over-a-million"],
)
async def test_quantity_out_of_bounds_is_refused_with_400_naming_it(
    broker: Client, field: str, event: dict[str, Any]
) -> None:
    response = await post_event(broker, event)
    assert response.status == 400
    body = await response.json()
    assert any(problem.startswith(field + ":") for problem in body["details"]["problems"]), body
    assert await db_rows(broker, "SELECT * FROM webhook_events") == []


async def test_largest_allowed_quantity_is_accepted(broker: Client) -> None:
    response = await post_event(broker, subscription_event(quantity=1_000_000))
    assert response.status == 200


# --- updated_time from the future --------------------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def zoho_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


@pytest.fixture
async def clocked_broker(
    tmp_path: Path, platform_server: TestServer, aiohttp_client: Any
) -> Client:
    """The broker with its clock fixed at NOW."""
    settings = fast_settings(tmp_path, str(platform_server.make_url("")).rstrip("/"))
    client: Client = await aiohttp_client(create_app(settings, clock=NOW.timestamp))
    return client


async def test_event_from_far_in_the_future_is_refused_and_the_next_real_one_applies(
    clocked_broker: Client, simulator: PlatformSimulator
) -> None:
    far = subscription_event(quantity=7, updated=zoho_time(NOW + timedelta(days=30)))
    response = await post_event(clocked_broker, far)
    assert response.status == 400
    body = await response.json()
    assert any(
        p.startswith("data.subscription.updated_time:") for p in body["details"]["problems"]
    ), body
    assert "ahead" in body["message"]
    assert await db_rows(clocked_broker, "SELECT * FROM subscriptions") == []

    real = subscription_event(quantity=5, updated=zoho_time(NOW - timedelta(minutes=1)))
    response = await post_event(clocked_broker, real)
    assert (await response.json())["outcome"] == "queued"
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    assert simulator.applied[0].body is not None
    assert simulator.applied[0].body["no_of_users"] == "5"


async def test_a_few_hours_of_clock_skew_is_tolerated(clocked_broker: Client) -> None:
    event = subscription_event(updated=zoho_time(NOW + timedelta(hours=3)))
    response = await post_event(clocked_broker, event)
    assert (await response.json())["outcome"] == "queued"


async def test_a_future_time_stored_before_the_check_does_not_freeze_the_subscription(
    clocked_broker: Client, simulator: PlatformSimulator
) -> None:
    """A row written by an older broker holds a time a year ahead: later events still apply."""
    first = subscription_event(quantity=5, updated=zoho_time(NOW - timedelta(hours=1)))
    assert (await post_event(clocked_broker, first)).status == 200
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    year_ahead = (NOW + timedelta(days=365)).timestamp()
    await clocked_broker.app[store_key].write(
        lambda db: db.execute("UPDATE subscriptions SET billing_updated_at = ?", [year_ahead])
    )

    upgrade = subscription_event(
        "subscription_upgraded", quantity=9, updated=zoho_time(NOW - timedelta(minutes=5))
    )
    response = await post_event(clocked_broker, upgrade)
    assert (await response.json())["outcome"] == "queued"
    await simulator.wait_until(lambda s: len(s.applied) == 2)
    assert simulator.applied[1].body is not None
    assert simulator.applied[1].body["no_of_users"] == "9"


async def test_a_billing_read_dated_in_the_future_is_refused_not_stored(
    clocked_broker: Client,
) -> None:
    """Snapshots read from the Billing API (checkout returns) pass the same check."""
    event = subscription_event(updated=zoho_time(NOW + timedelta(days=3)))
    settings = clocked_broker.app[settings_key]
    result = await clocked_broker.app[store_key].write(
        partial(
            ingest_billing_read,
            document=event["data"]["subscription"],
            source="test",
            settings=settings,
            now=NOW.timestamp(),
        )
    )
    assert result.outcome == "refused"
    assert "future" in (result.reason or "")
    assert await db_rows(clocked_broker, "SELECT * FROM subscriptions") == []
