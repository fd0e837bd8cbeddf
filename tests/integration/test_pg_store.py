"""The PostgreSQL store under what replicas do to it: the same event and the same row written at
once from several stores, migrations started together, a worker woken by another process's
commit, claims that never put two calls of one subscription on the wire, and a database outage
that answers 503 and heals without a restart."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from broker.core.billing_events import parse_webhook_event
from broker.core.mapping import PlatformState
from broker.errors import StoreError
from broker.store.engine.pg_sql import to_psycopg
from broker.store.engine.postgres import PgStore
from broker.store.engine.tx import Tx
from broker.store.migrations import SCHEMA
from broker.store.migrations.runner import MIGRATIONS_TABLE
from broker.store.opening import postgres_store
from broker.store.outbox import claim_due
from broker.store.pipeline import ingest_webhook
from tests.conftest import BrokerFactory, db_rows, fast_settings, post_event
from tests.support.basics import eventually, subscription_event
from tests.support.replicas import rows
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgresql


# --- the SQL rewrites, on worked examples -------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("WHERE at <= :now LIMIT :limit", "WHERE at <= %(now)s LIMIT %(limit)s"),
        # Quoted text keeps its ? and :name; every % is doubled so psycopg leaves it alone.
        ("SELECT '?', ':x', 'it''s ?' WHERE a LIKE '10%' AND b = ?",
         "SELECT '?', ':x', 'it''s ?' WHERE a LIKE '10%%' AND b = %s"),
        # A cast is not a named parameter.
        ("SELECT (b::json ->> 'updated_time')", "SELECT (b::json ->> 'updated_time')"),
    ],
)  # fmt: skip
def test_placeholders_become_psycopgs(written: str, sent: str) -> None:
    assert to_psycopg(written) == sent


async def test_a_python_bool_is_written_as_the_schemas_integer_flag(
    migrated_postgres_url: str,
) -> None:
    """The schema's flags are integers on both backends (``dry_run``, ``uncertain``); store code
    binds Python bools, which sqlite3 writes as 1 and 0, and so must the PostgreSQL store."""
    [store] = await open_stores(migrated_postgres_url, 1)
    try:

        def two_runs(db: Tx) -> list[dict[str, Any]]:
            for dry_run in (True, False):
                db.execute(
                    "INSERT INTO reconcile_runs (started_at, trigger, dry_run, outcome)"
                    " VALUES (0, 'test', ?, 'ok')",
                    [dry_run],
                )
            return db.select_all(
                "SELECT dry_run FROM reconcile_runs WHERE dry_run = ? OR dry_run = ? ORDER BY id",
                [True, False],
            )

        assert await store.write(two_runs) == [{"dry_run": 1}, {"dry_run": 0}]
    finally:
        await close_all(stores=[store])


# --- stores side by side on one database --------------------------------------------------------


async def open_stores(url: str, count: int, **options: Any) -> list[PgStore]:
    stores = [postgres_store(url, **options) for _ in range(count)]
    await asyncio.gather(*(store.open() for store in stores))
    return stores


async def close_all(stores: list[PgStore]) -> None:
    await asyncio.gather(*(store.close() for store in stores))


async def test_replicas_starting_together_apply_each_migration_once(postgres_url: str) -> None:
    stores = await open_stores(postgres_url, 4)
    try:
        names = await stores[0].read(
            lambda db: [r["name"] for r in db.select_all(f"SELECT name FROM {MIGRATIONS_TABLE}")]  # noqa: S608
        )
        assert sorted(names) == [migration.name for migration in SCHEMA]  # each once, none missing
    finally:
        await close_all(stores)


async def test_a_read_modify_write_from_many_stores_at_once_loses_no_update(
    postgres_url: str,
) -> None:
    """Each job reads a counter and writes it back plus one, as store functions read facts and
    then write decisions. Under READ COMMITTED updates racing across the two stores would be
    lost; SERIALIZABLE aborts the losers of each race and the store runs them again."""
    stores = await open_stores(postgres_url, 2, pool_size=8)
    try:
        await stores[0].write(lambda db: _counter_table(db))

        def bump(db: Tx) -> None:
            row = db.select_one("SELECT value FROM reconcile_state WHERE name = 'counter'")
            assert row is not None
            db.execute(
                "UPDATE reconcile_state SET value = ? WHERE name = 'counter'",
                [str(int(row["value"]) + 1)],
            )

        await asyncio.gather(*(stores[i % 2].write(bump) for i in range(40)))
        final = await stores[1].read(
            lambda db: db.select_one("SELECT value FROM reconcile_state WHERE name = 'counter'")
        )
        assert final == {"value": "40"}
    finally:
        await close_all(stores)


async def test_replicas_write_one_group_at_a_time_so_a_read_then_write_never_races(
    postgres_url: str,
) -> None:
    """Store A's job reads the counter and holds; store B's job must not even start (it would
    read the same 0) until A has committed: then B reads 1 and writes 2, and nothing was run
    twice."""
    first, second = await open_stores(postgres_url, 2)
    holding, release = threading.Event(), threading.Event()
    started: list[str] = []
    try:
        await first.write(_counter_table)

        def bump(name: str, db: Tx) -> str:
            row = db.select_one("SELECT value FROM reconcile_state WHERE name = 'counter'")
            assert row is not None
            started.append(name)
            if name == "first":
                holding.set()
                release.wait(5)
            db.execute(
                "UPDATE reconcile_state SET value = ? WHERE name = 'counter'",
                [str(int(row["value"]) + 1)],
            )
            return str(row["value"])

        first_write = asyncio.ensure_future(first.write(partial(bump, "first")))
        assert await asyncio.get_running_loop().run_in_executor(None, holding.wait, 5)
        second_write = asyncio.ensure_future(second.write(partial(bump, "second")))
        # B's writer is now waiting for the lock A holds (seen from the server, not a sleep).
        await eventually(lambda: _waiting_for_a_lock(postgres_url), message="B waits for A")
        assert started == ["first"]
        release.set()
        assert await asyncio.gather(first_write, second_write) == ["0", "1"]
        final = await first.read(
            lambda db: db.select_one("SELECT value FROM reconcile_state WHERE name = 'counter'")
        )
        assert final == {"value": "2"}
        assert first.retries + second.retries == 0
    finally:
        release.set()
        await close_all([first, second])


async def _waiting_for_a_lock(url: str) -> bool:
    found = await rows(
        url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'LOCK%%'"
    )
    return bool(found)


def _counter_table(db: Tx) -> None:
    db.execute("INSERT INTO reconcile_state (name, value) VALUES ('counter', '0')")


async def test_a_delivery_queued_on_one_store_wakes_another(
    postgres_url: str, tmp_path: Path
) -> None:
    """Store A ingests a webhook that queues a delivery; store B's wake-up callback fires, with
    no poll: this is how a replica whose worker sleeps learns of work another replica queued."""
    a, b = await open_stores(postgres_url, 2, pool_size=2)
    try:
        woken = asyncio.Event()
        b.on_wakeup(woken.set)

        async def listening() -> bool:
            found = await rows(
                postgres_url,
                "SELECT 1 FROM pg_stat_activity WHERE query = 'LISTEN \"broker_deliveries\"'",
            )
            return bool(found)

        # B's LISTEN starts on its own thread; a NOTIFY before it would be missed by design
        # (the worker's poll finds that work).
        await eventually(listening, within=5.0, message="store B listening")
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
        await asyncio.wait_for(woken.wait(), timeout=5.0)
    finally:
        await close_all([a, b])


async def test_claims_from_several_stores_never_lease_two_deliveries_of_one_subscription(
    postgres_url: str,
) -> None:
    stores = await open_stores(postgres_url, 3, pool_size=4)
    try:
        await stores[0].write(_twenty_subscriptions_three_deliveries_each)
        claims = await asyncio.gather(
            *(
                stores[i % 3].write(
                    partial(claim_due, owner=f"w{i}", now=1000.0, lease_seconds=60, limit=5)
                )
                for i in range(12)
            )
        )
        claimed = [d for batch, _ in claims for d in batch]
        ids = [d.id for d in claimed]
        assert len(ids) == len(set(ids))  # no delivery leased twice
        subscriptions = [d.subscription_id for d in claimed]
        assert len(subscriptions) == len(set(subscriptions))  # one on the wire per subscription
        assert len(claimed) == 20  # and every subscription got its oldest delivery out
        assert {d.id % 3 for d in claimed} == {1}  # the oldest of each: ids 1, 4, 7, ...
    finally:
        await close_all(stores)


def _twenty_subscriptions_three_deliveries_each(db: Tx) -> None:
    for number in range(20):
        sid = f"{9000 + number}"
        db.execute("INSERT INTO subscriptions (subscription_id, updated_at) VALUES (?, 0)", [sid])
        for _ in range(3):
            db.execute(
                "INSERT INTO deliveries (subscription_id, target_json, cause, state,"
                " created_at, next_attempt_at) VALUES (?, ?, 'test', 'pending', 0, 0)",
                [sid, PlatformState(active=True, zgid="1", planid="1001").to_json()],
            )


# --- brokers side by side ------------------------------------------------------------------------


@pytest.fixture
def broker_store(postgres_url: str) -> dict[str, Any]:
    return {"url": postgres_url}


async def test_one_event_posted_to_two_replicas_at_once_has_one_row_and_one_effect(
    make_broker: BrokerFactory, simulator: Any
) -> None:
    first, second = await make_broker(), await make_broker()
    # Twenty orgs, one subscription each: two live subscriptions in one org would be a
    # conflict, and the platform would rightly get only the first.
    events = [
        subscription_event(
            subscription_id=f"10000000000000{n:04d}",
            event_id=f"88{n:04d}",
            zgid=f"7100000{n:04d}",
            customer_id=f"20000000000000{n:04d}",
        )
        for n in range(20)
    ]
    answers = await asyncio.gather(
        *(post_event(broker, event) for event in events for broker in (first, second))
    )
    assert all(answer.status == 200 for answer in answers)
    rows = await db_rows(first, "SELECT event_id FROM webhook_events")
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in events)
    deliveries = await db_rows(first, "SELECT subscription_id FROM deliveries")
    assert len(deliveries) == 20  # one per event, not one per post

    async def all_added() -> bool:
        return len(simulator.applied) == 20

    await eventually(all_added, message="20 Adds on the platform")
    assert len(simulator.applied) == 20  # and no second call for any of them


async def test_a_database_outage_answers_503_and_heals_without_a_restart(
    make_broker: BrokerFactory, postgres_url: str
) -> None:
    split = urlsplit(postgres_url)
    proxy = TcpProxy(split.hostname or "127.0.0.1", split.port or 5432)
    await proxy.start()
    through_proxy = urlunsplit(split._replace(netloc=f"{split.username}@127.0.0.1:{proxy.port}"))
    broker = await make_broker(store={"url": through_proxy, "connect_timeout_seconds": 1.0})
    assert (await broker.get("/readyz")).status == 200

    await proxy.cut()
    answer = await broker.get("/readyz")
    body = await answer.json()
    assert answer.status == 503
    assert body["checks"]["store"].startswith("failing")
    webhook = await post_event(broker, subscription_event())
    assert webhook.status == 503  # Zoho retries a 5xx, so nothing acknowledged is lost
    assert "Retry-After" in webhook.headers
    assert "password" not in await webhook.text()

    await proxy.start()  # the database is back, on the same address
    await eventually(
        lambda: _ready(broker), within=15, message="readyz ready again without a restart"
    )
    assert (await post_event(broker, subscription_event())).status == 200
    await proxy.cut()


async def _ready(client: Any) -> bool:
    return (await client.get("/readyz")).status == 200


async def test_a_store_that_cannot_reach_its_server_refuses_to_open_clearly() -> None:
    store = postgres_store("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1.0)
    with pytest.raises(StoreError) as refused:
        await store.open()
    assert "cannot open the PostgreSQL database" in str(refused.value)
    await store.close()


async def test_the_writer_rewrites_each_statement_once_per_store_not_per_transaction(
    postgres_url: str,
) -> None:
    """The placeholder rewrite was 18% of the writer's time until it was cached; the cache must
    outlive a transaction, or every group pays it again."""
    (store,) = await open_stores(postgres_url, 1)
    try:
        await store.write(insert_counter)
        after_first = store.statements_translated
        for _ in range(3):  # three more transactions of the same statements
            await store.write(bump_counter)
        after_more = store.statements_translated
        await store.write(bump_counter)
        assert after_first >= 1
        assert store.statements_translated == after_more  # nothing rewritten again
    finally:
        await close_all([store])


def insert_counter(db: Tx) -> None:
    db.execute("INSERT INTO reconcile_state (name, value) VALUES (?, ?)", ["counter", "0"])


def bump_counter(db: Tx) -> None:
    db.execute("UPDATE reconcile_state SET value = ? WHERE name = ?", ["1", "counter"])
