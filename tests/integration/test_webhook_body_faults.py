"""Bodies that break on the way in, on both store backends: raw bytes that are not UTF-8 (a lone
surrogate), a compressed body that does not decompress, a client that hangs up mid-body and one
that stops sending. Each gets a clear answer (or, when nobody is left to read one, a quiet log
line), its own refusal reason, and nothing stored; none is a 500.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from broker.core.decide import Outcome
from broker.store.engine.tx import Tx
from broker.store.ops_actions import Operator
from broker.store.pipeline import PipelineResult
from broker.store.replay import replay_event
from broker.web.appkeys import settings_key, store_key
from tests.conftest import BrokerFactory, db_rows
from tests.support.basics import ZAPIKEY, body_of, subscription_event
from tests.support.postgres import store_section

Client = TestClient[web.Request, web.Application]

# UTF-8's encoding of U+D800, a lone surrogate: json.loads on bytes lets it through.
LONE_SURROGATE = b"\xed\xa0\x80"
FORM = "application/x-www-form-urlencoded"
DEADLINE = 10.0  # seconds any wait in this module may take before the test fails


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every test here runs once on SQLite and once on PostgreSQL."""
    return store_section(store_url)


def event_with_a_lone_surrogate() -> bytes:
    body = body_of(subscription_event(display_name="PLACEHOLDER"))
    return body.replace(b"PLACEHOLDER", b"Acme " + LONE_SURROGATE + b" Ltd")


async def post(
    client: Client, body: bytes, *, content_type: str = "application/json", **headers: str
) -> tuple[int, Any]:
    all_headers = {"Content-Type": content_type, "zapikey": ZAPIKEY, **headers}
    async with client.post("/webhooks/billing", data=body, headers=all_headers) as response:
        return response.status, await response.json()


async def refused(client: Client) -> dict[str, float]:
    """broker_webhooks_refused_total by reason, as /metrics shows it."""
    text = await (await client.get("/metrics")).text()
    counts = {}
    for line in text.splitlines():
        if line.startswith("broker_webhooks_refused_total{"):
            labels, _, value = line.rpartition(" ")
            counts[labels.split('reason="')[1].split('"')[0]] = float(value)
    return counts


async def assert_nothing_stored(client: Client) -> None:
    for table in ("webhook_events", "subscriptions", "deliveries"):
        assert await db_rows(client, f"SELECT * FROM {table}") == [], table  # noqa: S608 - ours


# --- invalid UTF-8: a lone surrogate as raw bytes ---------------------------------------------


async def test_json_body_with_a_raw_lone_surrogate_is_refused_with_400(broker: Client):
    status, body = await post(broker, event_with_a_lone_surrogate())
    assert status == 400
    assert body["error"] == "invalid_payload"
    assert "UTF-8" in body["message"]
    assert await refused(broker) == {"unreadable": 1.0}
    await assert_nothing_stored(broker)


async def test_form_field_with_a_percent_encoded_lone_surrogate_is_refused_with_400(
    broker: Client,
):
    form = b"payload=" + quote(event_with_a_lone_surrogate(), safe="").encode()
    status, body = await post(broker, form, content_type=FORM)
    assert status == 400
    assert body["error"] == "invalid_payload"
    assert "UTF-8" in body["message"]
    await assert_nothing_stored(broker)


async def test_form_body_with_a_raw_lone_surrogate_is_refused_with_400(broker: Client):
    status, body = await post(
        broker, b"payload=" + event_with_a_lone_surrogate(), content_type=FORM
    )
    assert status == 400
    assert body["error"] == "invalid_payload"
    await assert_nothing_stored(broker)


@pytest.mark.parametrize("content_type", ["application/json", FORM])
async def test_stored_body_with_a_raw_lone_surrogate_replays_as_refused_not_an_error(
    broker: Client, content_type: str
):
    """A row written before the edge refused such bodies (or copied from elsewhere) must not
    break a replay: the replay says the body cannot be read and changes nothing."""
    event_id = "4242"
    status, _ = await post(broker, body_of(subscription_event(event_id=event_id)))
    assert status == 200
    bad = event_with_a_lone_surrogate()
    stored = b"payload=" + quote(bad, safe="").encode() if content_type == FORM else bad
    store = broker.app[store_key]

    def rewrite(db: Tx) -> None:
        db.execute(
            "UPDATE webhook_events SET raw_body = ?, content_type = ? WHERE event_id = ?",
            [stored, content_type, event_id],
        )

    await store.write(rewrite)
    before = await db_rows(broker, "SELECT id FROM deliveries")

    def replay(db: Tx) -> PipelineResult:
        settings = broker.app[settings_key]
        return replay_event(db, Operator("ops"), event_id, settings=settings, now=time.time())

    result = await store.write(replay)
    assert result.outcome is Outcome.REFUSED
    assert "cannot be read again" in (result.reason or "")
    assert "UTF-8" in (result.reason or "")
    assert await db_rows(broker, "SELECT id FROM deliveries") == before  # nothing queued


# --- Content-Encoding --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_body_that_does_not_decompress_is_refused_with_400(
    broker: Client, encoding: str
):
    status, body = await post(
        broker, b"this is not " + encoding.encode() + b" data", **{"Content-Encoding": encoding}
    )
    assert status == 400
    assert body["error"] == "invalid_payload"
    assert encoding in body["message"]
    assert await refused(broker) == {"unreadable": 1.0}
    await assert_nothing_stored(broker)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_body_that_decompresses_is_accepted(broker: Client, encoding: str):
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    packer = zlib.compressobj(wbits=wbits)
    packed = packer.compress(body_of(subscription_event())) + packer.flush()
    status, body = await post(broker, packed, **{"Content-Encoding": encoding})
    assert status == 200, body
    assert body["status"] == "accepted"


# --- a client that hangs up, or stops, mid-body ------------------------------------------------


async def open_partial_post(
    client: Client, declared: int, sent: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a webhook's headers declaring ``declared`` bytes, then only ``sent`` of them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        "POST /webhooks/billing HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\n"
        f"zapikey: {ZAPIKEY}\r\nContent-Length: {declared}\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    return reader, writer


async def wait_for_request_log(logs: list[dict[str, Any]]) -> dict[str, Any]:
    """The request's own log line, waited for with a deadline."""
    async with asyncio.timeout(DEADLINE):
        while True:
            lines = [line for line in logs if line["event"] == "http.request"]
            if lines:
                return lines[0]
            await asyncio.sleep(0.005)  # a poll under the deadline, not a wait for time to pass


async def test_client_that_disconnects_mid_body_is_its_own_reason_logged_at_info(broker: Client):
    body = body_of(subscription_event())
    with capture_logs() as logs:
        _, writer = await open_partial_post(broker, len(body), body[:20])
        writer.close()
        await writer.wait_closed()
        request_line = await wait_for_request_log(logs)
    assert request_line["status"] == 499, logs
    assert not [line for line in logs if line["event"] == "http.unhandled"]
    assert all(line["log_level"] in {"info", "debug"} for line in logs), logs
    assert await refused(broker) == {"disconnected": 1.0}
    await assert_nothing_stored(broker)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode().strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("sent", [b"", b'{"event_id": "1'], ids=["stalled", "partial"])
async def test_body_that_stops_arriving_is_answered_408_after_the_body_timeout(
    make_broker: BrokerFactory, sent: bytes
):
    client = await make_broker(server={"body_timeout_seconds": 0.2})
    with capture_logs() as logs:
        reader, writer = await open_partial_post(client, 500, sent)
        async with asyncio.timeout(DEADLINE):
            status, headers, body = await read_answer(reader)
            # The server ends the connection; the client never sends the rest.
            assert await reader.read() == b""
        writer.close()
    assert status == 408
    assert headers["connection"] == "close"
    assert body["error"] == "body_timeout"
    assert "0.2 seconds" in body["message"]
    refusal = [line for line in logs if line["event"] == "http.refused"]
    assert [line["log_level"] for line in refusal] == ["info"]
    assert await refused(client) == {"body_timeout": 1.0}
    await assert_nothing_stored(client)


async def test_body_that_arrives_in_time_is_not_cut_off(make_broker: BrokerFactory):
    client = await make_broker(server={"body_timeout_seconds": 5})
    status, body = await post(client, body_of(subscription_event()))
    assert status == 200, body
