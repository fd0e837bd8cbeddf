"""The webhook edge: who may post, how big, what shape, and that every refusal is clean JSON.

Each refusal is checked three ways: the status, a JSON body that names the problem, and no trace in
the database (the handler commits before it answers, so the answer itself means "finished").
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.web import webhook_auth
from tests.conftest import db_rows
from tests.support.basics import ZAPIKEY, ZGID, ZUID, subscription_event

Client = TestClient[web.Request, web.Application]

LIMIT = 1024 * 1024  # the default server.max_body_bytes
SIGNING_SECRET = "edge-signing-secret-42"
NEW_KEY = "new-key-abcdefghijkl"
ERROR_KEYS = {"error", "message", "request_id"}
STORED_TABLES = ("webhook_events", "subscriptions", "deliveries")


async def send(
    client: Client,
    body: bytes | io.BytesIO | AsyncIterator[bytes],
    *,
    content_type: str | None = "application/json",
    key: str | None = ZAPIKEY,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """POST raw bytes to the webhook; returns (status, decoded JSON body, headers).

    ``response.json()`` refuses any content type but JSON, so every call also proves that.
    """
    all_headers: dict[str, str] = {}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    if key is not None:
        all_headers["zapikey"] = key
    all_headers.update(headers or {})
    if isinstance(body, bytes) and len(body) > LIMIT // 2:
        # aiohttp warns about large raw bytes; a file-like body still declares Content-Length.
        body = io.BytesIO(body)
    async with client.post(
        "/webhooks/billing", data=body, headers=all_headers, params=params
    ) as response:
        document = await response.json()
        return response.status, document, dict(response.headers)


def raw(payload: Any) -> bytes:
    return json.dumps(payload).encode()


async def stored_counts(client: Client) -> dict[str, int]:
    counts = {}
    for table in STORED_TABLES:
        rows = await db_rows(client, f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608 - ours
        counts[table] = rows[0]["n"]
    return counts


async def assert_nothing_stored(client: Client) -> None:
    assert await stored_counts(client) == dict.fromkeys(STORED_TABLES, 0)


def problems_text(body: dict[str, Any]) -> str:
    """Everything a refusal says, as one string to search for a field name."""
    return json.dumps(body)


def hmac_hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def hmac_base64(secret: str, payload: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), payload, hashlib.sha256).digest()).decode()


def zoho_signed_string(query: dict[str, str], body: bytes) -> bytes:
    """docs/contracts.md §3, written out independently of the broker's implementation."""
    return "".join(f"{k}{query[k]}" for k in sorted(query)).encode() + body


# --- authentication --------------------------------------------------------------------------


async def test_missing_zapikey_is_refused_with_401_and_nothing_stored(broker: Client):
    status, body, _ = await send(broker, raw(subscription_event()), key=None)
    assert status == 401
    assert body["error"] == "unauthenticated"
    assert "zapikey" in body["message"]
    await assert_nothing_stored(broker)


async def test_wrong_zapikey_is_refused_with_401_and_nothing_stored(broker: Client):
    status, body, _ = await send(broker, raw(subscription_event()), key="wrong-" + ZAPIKEY)
    assert status == 401
    assert body["error"] == "unauthenticated"
    assert "does not match" in body["message"]
    await assert_nothing_stored(broker)


async def test_empty_zapikey_header_is_refused(broker: Client):
    status, body, _ = await send(broker, raw(subscription_event()), key="")
    assert status == 401
    assert "missing zapikey" in body["message"]
    await assert_nothing_stored(broker)


async def test_both_platform_and_rotated_zapikeys_are_accepted_and_a_third_is_not(make_broker):
    client = await make_broker(webhooks={"extra_zapikeys": [NEW_KEY]})
    old_status, _, _ = await send(client, raw(subscription_event()), key=ZAPIKEY)
    new_status, _, _ = await send(client, raw(subscription_event()), key=NEW_KEY)
    other_status, other, _ = await send(
        client, raw(subscription_event()), key="third-key-abcdefghijkl"
    )
    assert (old_status, new_status, other_status) == (200, 200, 401)
    assert other["error"] == "unauthenticated"
    rows = await db_rows(client, "SELECT COUNT(*) AS n FROM webhook_events")
    assert rows[0]["n"] == 2


# --- signature -------------------------------------------------------------------------------


def test_signed_string_matches_the_zoho_documented_example():
    body = b'{"created_date":"2019-03-06","event_id":"5675"}'
    payload = webhook_auth.signed_payload([("subscription_id", "90343"), ("name", "basic")], body)
    assert payload == (
        b'namebasicsubscription_id90343{"created_date":"2019-03-06","event_id":"5675"}'
    )


def test_signature_is_hmac_sha256_of_the_signed_string_in_hex_or_base64():
    payload = b'namebasicsubscription_id90343{"created_date":"2019-03-06","event_id":"5675"}'
    expected = hmac.new(SIGNING_SECRET.encode(), payload, hashlib.sha256)
    assert webhook_auth.compute_signature(SIGNING_SECRET, payload) == expected.hexdigest()
    assert webhook_auth.compute_signature(SIGNING_SECRET, payload, "hex") == expected.hexdigest()
    assert webhook_auth.compute_signature(SIGNING_SECRET, payload, "base64") == (
        base64.b64encode(expected.digest()).decode()
    )


async def test_correctly_signed_event_with_query_parameters_is_accepted(make_broker):
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    event = subscription_event()
    body = raw(event)
    query = {"subscription_id": "90343", "name": "basic"}
    signature = hmac_hex(SIGNING_SECRET, zoho_signed_string(query, body))
    status, answer, _ = await send(
        client, body, params=query, headers={"X-Zoho-Webhook-Signature": signature}
    )
    assert status == 200
    assert answer["event_id"] == event["event_id"]
    rows = await db_rows(client, "SELECT event_id FROM webhook_events")
    assert [r["event_id"] for r in rows] == [event["event_id"]]


async def test_upper_case_hex_signature_is_accepted(make_broker):
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    body = raw(subscription_event())
    signature = hmac_hex(SIGNING_SECRET, body).upper()
    status, _, _ = await send(client, body, headers={"X-Zoho-Webhook-Signature": signature})
    assert status == 200


async def test_base64_signature_is_accepted_when_configured_and_hex_is_not(make_broker):
    client = await make_broker(
        webhooks={"signing_secret": SIGNING_SECRET, "signature_encoding": "base64"}
    )
    body = raw(subscription_event())
    hex_status, _, _ = await send(
        client, body, headers={"X-Zoho-Webhook-Signature": hmac_hex(SIGNING_SECRET, body)}
    )
    b64_status, _, _ = await send(
        client, body, headers={"X-Zoho-Webhook-Signature": hmac_base64(SIGNING_SECRET, body)}
    )
    assert (hex_status, b64_status) == (401, 200)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "missing X-Zoho-Webhook-Signature"),
        ("", "missing X-Zoho-Webhook-Signature"),
        ("0" * 64, "signature does not match"),
        ("not-even-hex", "signature does not match"),
    ],
)
async def test_missing_or_wrong_signature_is_refused_and_nothing_stored(
    make_broker, signature: str | None, message: str
):
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    headers = {} if signature is None else {"X-Zoho-Webhook-Signature": signature}
    status, body, _ = await send(client, raw(subscription_event()), headers=headers)
    assert status == 401
    assert message in body["message"]
    await assert_nothing_stored(client)


async def test_signature_by_another_secret_is_refused(make_broker):
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    body = raw(subscription_event())
    signature = hmac_hex("some-other-secret-xyz", body)
    status, _, _ = await send(client, body, headers={"X-Zoho-Webhook-Signature": signature})
    assert status == 401
    await assert_nothing_stored(client)


async def test_tampered_query_parameter_breaks_the_signature(make_broker):
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    body = raw(subscription_event())
    signature = hmac_hex(SIGNING_SECRET, zoho_signed_string({"name": "basic"}, body))
    status, _, _ = await send(
        client,
        body,
        params={"name": "premium"},
        headers={"X-Zoho-Webhook-Signature": signature},
    )
    assert status == 401
    await assert_nothing_stored(client)


async def test_reserialised_body_with_the_original_signature_is_refused(make_broker):
    """The raw bytes are signed: the same JSON with other whitespace is a different message."""
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    event = subscription_event()
    signed_body = json.dumps(event, separators=(",", ":")).encode()
    signature = hmac_hex(SIGNING_SECRET, signed_body)
    resent = json.dumps(event, indent=2).encode()
    assert json.loads(resent) == json.loads(signed_body)
    status, _, _ = await send(client, resent, headers={"X-Zoho-Webhook-Signature": signature})
    assert status == 401
    await assert_nothing_stored(client)
    # The same signature over the exact bytes it was made for is accepted.
    status, _, _ = await send(client, signed_body, headers={"X-Zoho-Webhook-Signature": signature})
    assert status == 200


async def test_signature_is_not_checked_before_the_zapikey(make_broker):
    """A correctly signed event without the zapikey is still refused."""
    client = await make_broker(webhooks={"signing_secret": SIGNING_SECRET})
    body = raw(subscription_event())
    status, answer, _ = await send(
        client, body, key=None, headers={"X-Zoho-Webhook-Signature": hmac_hex(SIGNING_SECRET, body)}
    )
    assert status == 401
    assert "zapikey" in answer["message"]
    await assert_nothing_stored(client)


# --- size bound ------------------------------------------------------------------------------


async def test_body_over_one_mebibyte_with_content_length_is_refused_with_413(broker: Client):
    status, body, _ = await send(broker, b" " * (LIMIT + 1))
    assert status == 413
    assert body["error"] == "payload_too_large"
    # Refused on the declared length, before reading: the message quotes it.
    assert body["message"] == f"the body is {LIMIT + 1} bytes; the limit is {LIMIT}"
    await assert_nothing_stored(broker)


async def test_chunked_body_over_one_mebibyte_is_refused_with_413(broker: Client):
    async def chunks() -> AsyncIterator[bytes]:
        remaining = LIMIT + 1
        while remaining:
            size = min(remaining, 64 * 1024)
            remaining -= size
            yield b" " * size

    status, body, _ = await send(broker, chunks())
    assert status == 413
    assert body["error"] == "payload_too_large"
    # No length was declared: refused while streaming, once the limit was passed.
    assert body["message"] == f"the body passes the {LIMIT}-byte limit"
    await assert_nothing_stored(broker)


async def test_chunked_body_within_the_limit_is_read_and_accepted(broker: Client):
    event_body = raw(subscription_event())

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(event_body), 100):
            yield event_body[start : start + 100]

    status, body, _ = await send(broker, chunks())
    assert status == 200
    assert body["status"] == "accepted"


async def test_body_of_exactly_the_limit_is_read_and_judged_on_its_shape(broker: Client):
    """A body at the limit is not 'too large': it is read and refused for what it says (400)."""
    prefix, suffix = b'{"padding": "', b'"}'
    body = prefix + b"x" * (LIMIT - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMIT
    status, answer, _ = await send(broker, body)
    assert status == 400
    assert "event_id" in problems_text(answer)
    await assert_nothing_stored(broker)


# --- payload validation ----------------------------------------------------------------------


async def test_non_json_body_is_refused_naming_json(broker: Client):
    status, body, _ = await send(broker, b"event_id=1&event_type=subscription_created")
    assert status == 400
    assert body["error"] == "invalid_payload"
    assert "not valid JSON" in body["message"]
    await assert_nothing_stored(broker)


async def test_invalid_utf8_body_is_refused_naming_json(broker: Client):
    status, body, _ = await send(broker, b'{"event_id": "\xff\xfe"}')
    assert status == 400
    assert "JSON" in body["message"]


@pytest.mark.parametrize("document", [[], [{"event_id": "1"}], "subscription_created", 42, None])
async def test_json_that_is_not_an_object_is_refused(broker: Client, document: Any):
    status, body, _ = await send(broker, raw(document))
    assert status == 400
    assert "JSON object" in body["message"]
    await assert_nothing_stored(broker)


@pytest.mark.parametrize("body", [b"", b"   \n"])
async def test_empty_body_is_refused(broker: Client, body: bytes):
    status, answer, _ = await send(broker, body)
    assert status == 400
    assert "empty" in answer["message"]
    await assert_nothing_stored(broker)


async def test_missing_event_id_is_refused_naming_event_id(broker: Client):
    event = subscription_event()
    del event["event_id"]
    status, body, _ = await send(broker, raw(event))
    assert status == 400
    assert any(p.startswith("event_id") for p in body["details"]["problems"])
    await assert_nothing_stored(broker)


async def test_subscription_event_without_data_subscription_is_refused(broker: Client):
    event = subscription_event("subscription_upgraded")
    event["data"] = {}
    status, body, _ = await send(broker, raw(event))
    assert status == 400
    assert "data.subscription" in body["message"]
    await assert_nothing_stored(broker)


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = subscription_event()
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("data", "subscription", "plan", "quantity"), "abc"),
        (("event_id",), 1.5),
        (("event_id",), True),
        (("event_id",), ""),
        (("event_id",), None),
        (("event_type",), 7),
        (("data", "subscription", "subscription_id"), 2.5),
        (("data", "subscription", "updated_time"), "yesterday"),
        (("data", "subscription", "addons"), {"addon_code": "x"}),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else repr(v),
)
async def test_wrongly_typed_field_is_refused_naming_the_field(
    broker: Client, path: tuple[str, ...], value: Any
):
    status, body, _ = await send(broker, raw(_with(path, value)))
    assert status == 400
    assert body["error"] == "invalid_payload"
    dotted = ".".join(path)
    assert any(p.startswith(dotted) for p in body["details"]["problems"]), body
    await assert_nothing_stored(broker)


async def test_event_id_as_a_long_json_number_is_kept_exactly(broker: Client):
    event = subscription_event()
    body = raw(event).replace(f'"{event["event_id"]}"'.encode(), b"123456789012345678", 1)
    status, answer, _ = await send(broker, body)
    assert status == 200
    assert answer["event_id"] == "123456789012345678"
    rows = await db_rows(broker, "SELECT event_id FROM webhook_events")
    assert [r["event_id"] for r in rows] == ["123456789012345678"]


async def test_form_body_with_several_fields_is_refused_with_415_and_a_hint(broker: Client):
    form = urlencode({"event_id": "1", "event_type": "subscription_created"}).encode()
    status, body, _ = await send(broker, form, content_type="application/x-www-form-urlencoded")
    assert status == 415
    assert body["error"] == "unsupported_media_type"
    assert "JSON" in body["hint"]
    await assert_nothing_stored(broker)


async def test_form_body_whose_single_field_is_the_json_event_is_accepted(broker: Client):
    event = subscription_event()
    form = urlencode({"payload": json.dumps(event)}).encode()
    status, body, _ = await send(broker, form, content_type="application/x-www-form-urlencoded")
    assert status == 200
    assert body["event_id"] == event["event_id"]
    rows = await db_rows(broker, "SELECT event_id, content_type FROM webhook_events")
    assert rows == [
        {"event_id": event["event_id"], "content_type": "application/x-www-form-urlencoded"}
    ]


async def test_form_body_whose_single_field_is_not_json_is_refused_with_415(broker: Client):
    form = urlencode({"payload": "not json"}).encode()
    status, _, _ = await send(broker, form, content_type="application/x-www-form-urlencoded")
    assert status == 415
    await assert_nothing_stored(broker)


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data", "image/png"])
async def test_unknown_content_type_is_refused_with_415(broker: Client, content_type: str):
    status, body, _ = await send(broker, raw(subscription_event()), content_type=content_type)
    assert status == 415
    assert content_type in body["message"]
    assert "application/json" in body["hint"]
    await assert_nothing_stored(broker)


async def test_json_without_a_content_type_header_is_accepted(broker: Client):
    """Zoho's default payload is JSON; a missing Content-Type is read as JSON."""
    status, body, _ = await send(broker, raw(subscription_event()), content_type=None)
    assert status == 200
    assert body["status"] == "accepted"


# --- shape of every refusal ------------------------------------------------------------------


ERROR_CASES: dict[str, dict[str, Any]] = {
    "401": {"body": b"{}", "key": None, "status": 401},
    "400": {"body": b"[", "status": 400},
    "413": {"body": b" " * (LIMIT + 1), "status": 413},
    "415": {"body": b"<x/>", "content_type": "application/xml", "status": 415},
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
async def test_every_refusal_is_json_with_error_message_and_request_id(
    broker: Client, case: dict[str, Any]
):
    kwargs = {k: v for k, v in case.items() if k in ("key", "content_type")}
    status, body, headers = await send(broker, case["body"], **kwargs)
    assert status == case["status"]
    assert set(body) >= ERROR_KEYS
    assert body["request_id"]
    assert headers["X-Request-ID"] == body["request_id"]


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
async def test_supplied_request_id_is_echoed_in_header_and_error_body(
    broker: Client, case: dict[str, Any]
):
    kwargs = {k: v for k, v in case.items() if k in ("key", "content_type")}
    status, body, headers = await send(
        broker, case["body"], headers={"X-Request-ID": "zoho-trace_42.a"}, **kwargs
    )
    assert status == case["status"]
    assert body["request_id"] == "zoho-trace_42.a"
    assert headers["X-Request-ID"] == "zoho-trace_42.a"


@pytest.mark.parametrize("supplied", ["has space", "x" * 65, "semi;colon", 'quote"d'])
async def test_unsafe_request_id_is_replaced_not_echoed(broker: Client, supplied: str):
    _, body, headers = await send(broker, b"{}", key=None, headers={"X-Request-ID": supplied})
    assert body["request_id"] != supplied
    assert headers["X-Request-ID"] == body["request_id"]
    assert body["request_id"].isalnum()


async def test_accepted_event_echoes_the_supplied_request_id(broker: Client):
    status, _, headers = await send(
        broker, raw(subscription_event()), headers={"X-Request-ID": "abc-123"}
    )
    assert status == 200
    assert headers["X-Request-ID"] == "abc-123"
    rows = await db_rows(broker, "SELECT request_id FROM webhook_events")
    assert rows == [{"request_id": "abc-123"}]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_on_the_webhook_answer_405_json(broker: Client, method: str):
    async with broker.request(method, "/webhooks/billing") as response:
        assert response.status == 405
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["error"] == "method_not_allowed"
    assert set(body) >= ERROR_KEYS
    assert "POST" in response.headers["Allow"]
    assert response.headers["X-Request-ID"] == body["request_id"]


# --- inputs that today crash the handler (5xx) -----------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"1" * 5000, b'{"event_id": ' + b"1" * 5000 + b"}"],
    ids=["bare", "event_id"],
)
async def test_json_with_an_integer_of_thousands_of_digits_is_refused_with_400(
    broker: Client, body: bytes
):
    status, answer, _ = await send(broker, body)
    assert status == 400
    assert answer["error"] == "invalid_payload"


async def test_form_field_holding_a_huge_integer_is_refused_not_a_500(broker: Client):
    form = b"payload=" + b"1" * 5000
    status, _, _ = await send(broker, form, content_type="application/x-www-form-urlencoded")
    assert 400 <= status < 500


async def test_deeply_nested_json_is_refused_with_400(broker: Client):
    status, answer, _ = await send(broker, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400
    assert answer["error"] == "invalid_payload"


async def test_subscription_with_deeply_nested_extra_keys_is_not_a_500(broker: Client):
    nested: dict[str, Any] = {"x": 1}
    for _ in range(300):
        nested = {"x": nested}
    status, _, _ = await send(broker, raw(subscription_event(vendor_blob=nested)))
    assert status < 500


# Zoho's multi-select fields hold a list, its lookup fields an object: both are real data.
MULTI_SELECT = {"label": "Regions", "api_name": "cf_regions", "value": ["EU", "US"]}
LOOKUP = {"label": "Account", "api_name": "cf_account", "value": {"id": "9001", "name": "Acme"}}


async def test_custom_field_values_that_are_lists_or_objects_are_accepted_and_stored(
    broker: Client,
):
    event = subscription_event(
        custom_fields=[MULTI_SELECT, LOOKUP],
        custom_field_hash={"cf_regions": ["EU", "US"], "cf_account": {"id": "9001"}},
    )
    event["data"]["subscription"]["customer"]["custom_fields"] += [MULTI_SELECT, LOOKUP]
    status, answer, _ = await send(broker, raw(event))
    assert status == 200, answer
    assert answer["status"] == "accepted"
    # The ids are still read from the customer's fields beside the list and the object.
    customers = await db_rows(broker, "SELECT zuid, zgid FROM customers")
    assert customers == [{"zuid": ZUID, "zgid": ZGID}]
    rows = await db_rows(broker, "SELECT billing_json FROM subscriptions")
    stored = json.loads(rows[0]["billing_json"])
    assert stored["custom_fields"] == [MULTI_SELECT, LOOKUP]
    assert stored["custom_field_hash"]["cf_account"] == {"id": "9001"}
    assert stored["customer"]["custom_fields"][-2:] == [MULTI_SELECT, LOOKUP]


@pytest.mark.parametrize("field", ["event_id", "subscription_id"])
async def test_lone_surrogate_in_an_id_is_refused_not_a_500(broker: Client, field: str):
    event = subscription_event()
    body = raw(event)
    old = event["event_id"] if field == "event_id" else event["data"]["subscription"][field]
    body = body.replace(f'"{old}"'.encode(), b'"\\ud800"')
    status, _, _ = await send(broker, body)
    assert 400 <= status < 500


# --- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and Infinity too: json.dumps writes them and json.loads reads them
    # st.text() never yields lone surrogates; a dedicated test above covers them.
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_KEYS = [
    "event_id",
    "event_type",
    "data",
    "subscription",
    "subscription_id",
    "status",
    "plan",
    "plan_code",
    "quantity",
    "addons",
    "addon_code",
    "customer",
    "custom_fields",
    "updated_time",
    "created_time",
]
# Objects built from the names the broker reads reach deeper into validation than random keys.
event_like = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6)
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "application/xml",
    "multipart/form-data; boundary=x",
]


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document (dict keys and list indexes)."""
    found: list[tuple[Any, ...]] = []
    children = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else []
    )
    for key, value in children:
        found.append((*prefix, key))
        found.extend(_paths(value, (*prefix, key)))
    return found


def _mutate(document: Any, path: tuple[Any, ...], replacement: Any, drop: bool) -> None:
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement


async def _check_answer(client: Client, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type, "zapikey": ZAPIKEY}
    async with client.post("/webhooks/billing", data=body, headers=headers) as response:
        status = response.status
        assert status < 500, (status, await response.text())
        assert response.content_type == "application/json", response.content_type
        answer = await response.json()
    assert isinstance(answer, dict)
    if status >= 400:
        assert set(answer) >= ERROR_KEYS, answer


async def _fuzz(client: Client, run: Callable[[Callable[[bytes, str], None]], None]) -> None:
    """Run a Hypothesis test in a worker thread; each example is posted on this event loop.

    pytest-asyncio cannot drive an ``async`` ``@given`` test, and starting an app per example is
    slow; so the engine runs synchronously in a thread and hands each request back to the loop
    that owns the broker fixture.
    """
    loop = asyncio.get_running_loop()

    def post(body: bytes, content_type: str) -> None:
        future = asyncio.run_coroutine_threadsafe(_check_answer(client, body, content_type), loop)
        future.result(timeout=10)

    await asyncio.to_thread(run, post)


async def test_fuzzed_json_documents_never_get_a_5xx_and_always_get_json(broker: Client):
    def run(post: Callable[[bytes, str], None]) -> None:
        @FUZZ
        @given(document=json_values | event_like)
        def example(document: Any) -> None:
            post(json.dumps(document).encode(), "application/json")

        example()

    await _fuzz(broker, run)


async def test_fuzzed_bytes_never_get_a_5xx_and_always_get_json(broker: Client):
    def run(post: Callable[[bytes, str], None]) -> None:
        @FUZZ
        @given(body=st.binary(max_size=512), content_type=st.sampled_from(CONTENT_TYPES))
        def example(body: bytes, content_type: str) -> None:
            post(body, content_type)

        example()

    await _fuzz(broker, run)


async def test_fuzzed_mutations_of_a_valid_event_never_get_a_5xx(broker: Client):
    base = subscription_event(
        "subscription_upgraded",
        updated="2026-11-21T10:00:00+0530",
        addons=[{"addon_code": "testapp_storage", "quantity": 2}],
    )
    paths = _paths(base)

    def run(post: Callable[[bytes, str], None]) -> None:
        @FUZZ
        @given(data=st.data())
        def example(data: st.DataObject) -> None:
            event = copy.deepcopy(base)
            event["event_id"] = str(data.draw(st.integers(1, 10**12), label="event_id"))
            for _ in range(data.draw(st.integers(1, 4), label="mutations")):
                live = [p for p in paths if _reachable(event, p)]
                if not live:
                    break
                path = data.draw(st.sampled_from(live), label="path")
                drop = data.draw(st.booleans(), label="drop")
                replacement = None if drop else data.draw(json_values, label="value")
                _mutate(event, path, replacement, drop)
            post(json.dumps(event).encode(), "application/json")

        example()

    await _fuzz(broker, run)
    # The mutated events that stayed valid were stored: the fuzz reached the pipeline.
    rows = await db_rows(broker, "SELECT COUNT(*) AS n FROM webhook_events")
    assert rows[0]["n"] > 0


def _reachable(document: Any, path: tuple[Any, ...]) -> bool:
    """True while the path still leads to a value after earlier mutations."""
    node = document
    for key in path:
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and key < len(node)
        if not (in_dict or in_list):
            return False
        node = node[key]
    return True
