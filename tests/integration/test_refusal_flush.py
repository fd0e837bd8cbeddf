"""Refused-webhook counts are written by a timer: one interval after the first count not yet
written, with no further refusal needed; never a write per request, none when nothing is pending,
and what is left at shutdown. Time here is the test's: the broker's clock and sleep are moved by
hand, so an interval passes without waiting for it."""

from __future__ import annotations

import sqlite3

from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.web.appkeys import refusals_key, settings_key
from broker.web.refused import FLUSH_INTERVAL_SECONDS
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import DECEMBER_FIRST_NOON, ManualTime, eventually, subscription_event
from tests.support.refusals import timer_naps

Client = TestClient[web.Request, web.Application]


async def started(make_broker: BrokerFactory, time: ManualTime) -> Client:
    return await make_broker(clock=time.clock, sleep=time.sleep)


async def stored(client: Client) -> list[dict[str, object]]:
    return await db_rows(client, "SELECT day, reason, count FROM webhook_refusals ORDER BY reason")


async def test_counts_are_written_one_interval_later_without_another_refusal(
    make_broker: BrokerFactory,
) -> None:
    time = ManualTime(DECEMBER_FIRST_NOON)
    client = await started(make_broker, time)
    first = time.now
    assert (await post_event(client, subscription_event(), key="wrong")).status == 401
    time.advance_to(first + 30)
    assert (await post_event(client, subscription_event(), key=None)).status == 401
    await eventually(lambda: first + FLUSH_INTERVAL_SECONDS in time.naps, message="the timer")

    time.advance_to(first + FLUSH_INTERVAL_SECONDS - 1)
    assert await stored(client) == []  # not yet: the interval has not passed
    time.advance_to(first + FLUSH_INTERVAL_SECONDS)
    expected = [{"day": "2026-12-01", "reason": "zapikey", "count": 2}]

    async def written() -> bool:
        return await stored(client) == expected

    await eventually(written, message="the counts written")
    assert client.app[refusals_key].flushes == 1


async def test_nothing_pending_means_no_timer_and_no_write(make_broker: BrokerFactory) -> None:
    time = ManualTime(DECEMBER_FIRST_NOON)
    client = await started(make_broker, time)
    tally = client.app[refusals_key]
    await eventually(lambda: tally.waiting, message="the timer waiting for a refusal")
    assert timer_naps(time) == []  # asleep on nothing: it will not wake to write nothing

    await post_event(client, subscription_event(), key="wrong")
    await eventually(lambda: timer_naps(time) != [], message="the timer napping")
    time.advance_to(time.naps[-1])
    await eventually(lambda: tally.waiting, message="the timer back to waiting")
    time.advance_to(time.now + 10 * FLUSH_INTERVAL_SECONDS)
    assert tally.flushes == 1
    assert timer_naps(time) == []
    assert [row["count"] for row in await stored(client)] == [1]


async def test_a_flood_of_refusals_costs_one_write_an_interval_and_one_at_shutdown(
    make_broker: BrokerFactory,
) -> None:
    time = ManualTime(DECEMBER_FIRST_NOON)
    client = await started(make_broker, time)
    tally = client.app[refusals_key]
    for _ in range(60):
        assert (await post_event(client, subscription_event(), key="wrong")).status == 401
    assert tally.flushes == 0  # all within the first interval: nothing written yet
    assert await stored(client) == []

    await eventually(lambda: timer_naps(time) != [], message="the timer napping")
    time.advance_to(time.naps[-1])
    await eventually(lambda: tally.flushes == 1 and tally.waiting, message="one write")
    assert await stored(client) == [{"day": "2026-12-01", "reason": "zapikey", "count": 60}]

    for _ in range(5):
        await post_event(client, subscription_event(), key=None)
    await client.close()  # shutdown before the next interval: what is left, in one more write
    assert tally.flushes == 2
    with sqlite3.connect(client.app[settings_key].store.path) as db:
        rows = db.execute("SELECT reason, count FROM webhook_refusals ORDER BY reason").fetchall()
    assert rows == [("zapikey", 65)]
