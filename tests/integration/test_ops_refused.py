"""Refused webhook requests: counted by reason in memory at the edge and shown on the console's
events page for the filtered days, written or not yet (their timer: test_refusal_flush.py)."""

from __future__ import annotations

import re

from tests.conftest import BrokerFactory, post_event
from tests.support.basics import DECEMBER_FIRST_NOON, ManualClock, subscription_event
from tests.support.ops import OPS, Client, sign_in

SIGNING_SECRET = "whsec-for-refusal-tests"


def shown(page: str, reason: str) -> int:
    """The count the events page shows for ``reason`` (0 when not listed)."""
    found = re.search(rf'class="refused-{reason}">(\d+)<', page)
    return int(found.group(1)) if found else 0


async def events_page(client: Client, query: str = "") -> str:
    response = await client.get(f"/ops/events{query}")
    assert response.status == 200
    return await response.text()


async def test_each_kind_of_refusal_is_counted_under_its_own_reason(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS, webhooks={"signing_secret": SIGNING_SECRET})
    await sign_in(client)
    event = subscription_event()
    assert (await post_event(client, event, key=None)).status == 401
    assert (await post_event(client, event, key="wrong")).status == 401
    assert (await post_event(client, event, key="wrong")).status == 401
    assert (await post_event(client, event)).status == 401  # no signature header
    bad_signature = {"X-Zoho-Webhook-Signature": "00" * 32}
    assert (await post_event(client, event, headers=bad_signature)).status == 401
    # The signature is checked before the content type, so this is a bad signature too.
    not_json = {"Content-Type": "application/xml", **bad_signature}
    assert (await post_event(client, b"<x/>", headers=not_json)).status == 401

    page = await events_page(client)
    assert shown(page, "zapikey") == 3  # missing once, wrong twice
    assert shown(page, "signature") == 3  # missing once, wrong twice


async def test_unreadable_and_unsupported_bodies_are_counted(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    await sign_in(client)
    assert (await post_event(client, b"{not json")).status == 400
    xml = {"Content-Type": "application/xml"}
    assert (await post_event(client, b"<x/>", headers=xml)).status == 415
    page = await events_page(client)
    assert shown(page, "unreadable") == 1
    assert shown(page, "media_type") == 1
    assert shown(page, "zapikey") == 0


async def test_the_counts_follow_the_events_page_date_filter(make_broker: BrokerFactory):
    clock = ManualClock(DECEMBER_FIRST_NOON)
    client = await make_broker(ops=OPS, clock=clock)
    await post_event(client, subscription_event(), key="wrong")
    clock.advance(86_400)  # the next day
    await post_event(client, subscription_event(), key="wrong")
    await post_event(client, subscription_event(), key="wrong")
    await sign_in(client)

    assert shown(await events_page(client), "zapikey") == 3
    assert shown(await events_page(client, "?since=2026-12-01&until=2026-12-01"), "zapikey") == 1
    assert shown(await events_page(client, "?since=2026-12-02"), "zapikey") == 2
    assert "None." in await events_page(client, "?until=2026-11-30")
