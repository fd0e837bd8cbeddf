"""PgStore across processes' worth of stores: what one replica commits wakes another."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import pytest

from broker.core.billing_events import parse_webhook_event
from broker.store.pipeline import ingest_webhook
from broker.store.postgres import PgStore
from tests.conftest import fast_settings
from tests.replica_support import rows
from tests.support import eventually, subscription_event

pytestmark = pytest.mark.postgresql
WAKE_WITHIN = 5.0  # seconds; the workers' poll in these terms would be 30 s or more


async def test_a_delivery_queued_on_one_store_wakes_another(
    postgres_url: str, tmp_path: Path
) -> None:
    """Store A ingests a webhook that queues a delivery; store B's wake-up callback fires, with
    no poll: this is how a replica whose worker sleeps learns of work another replica queued."""
    a, b = PgStore(postgres_url, pool_size=2), PgStore(postgres_url, pool_size=2)
    await a.open()
    await b.open()
    try:
        woken = asyncio.Event()
        b.on_wakeup(woken.set)

        async def listening() -> bool:
            found = await rows(
                postgres_url,
                "SELECT 1 FROM pg_stat_activity WHERE query = 'LISTEN \"broker_deliveries\"'",
            )
            return bool(found)

        # B's LISTEN starts on its own thread; a NOTIFY before it would be missed by design.
        await eventually(listening, within=WAKE_WITHIN, message="store B listening")
        assert not woken.is_set()

        event = subscription_event(event_id="8300000001")
        settings = fast_settings(tmp_path, "http://127.0.0.1:1")
        result = await a.write(
            partial(
                ingest_webhook, event=parse_webhook_event(event), raw_body=b"{}",
                content_type="application/json", request_id="r1", settings=settings,
                now=time.time(),
            )
        )  # fmt: skip
        assert result.outcome == "queued", result

        async with asyncio.timeout(WAKE_WITHIN):
            await woken.wait()
    finally:
        await a.close()
        await b.close()
