"""Bad input gets a clear 4xx, never a 500: raw non-ASCII headers, ids that are not Zoho ids,
unbounded quantities, and an ``updated_time`` from the far future that would freeze a
subscription.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import db_rows
from tests.support import ZAPIKEY, body_of, subscription_event

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
