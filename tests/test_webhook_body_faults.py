"""Bodies that break on the way in, on both store backends: raw bytes that are not UTF-8 (a lone
surrogate), a compressed body that does not decompress, a client that hangs up mid-body and one
that stops sending. Each gets a clear answer (or, when nobody is left to read one, a quiet log
line), its own refusal reason, and nothing stored; none is a 500.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.core.decide import Outcome
from broker.store.ops_actions import Operator
from broker.store.pipeline import PipelineResult
from broker.store.replay import replay_event
from broker.store.tx import Tx
from broker.web.appkeys import settings_key, store_key
from tests.conftest import db_rows
from tests.postgres_support import store_section
from tests.support import ZAPIKEY, body_of, subscription_event

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
