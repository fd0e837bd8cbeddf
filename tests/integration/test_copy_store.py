"""``broker copy-store``: a SQLite store made by the real pipeline lands in PostgreSQL row for
row with its ids; a broker on PostgreSQL then carries on past them; a second copy into the same
database is refused, naming a table; the URL's password is never printed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from broker.simulators.platform import PlatformSimulator
from broker.store.copy_store import BOOKKEEPING
from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import eventually, subscription_event
from tests.support.cli import run_cli
from tests.support.ops import delivery_ids, wait_for_state

PASSWORD = "copy-pw-4417"  # the test cluster trusts local connections: any password works


def with_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}")
    )


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            if r[0] not in BOOKKEEPING
        ]
        tables = {
            name: sorted(conn.execute(f'SELECT * FROM "{name}"'), key=repr)  # noqa: S608
            for name in names
        }
    conn.close()
    return tables


def pg_rows(url: str, table: str, columns: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
    return sorted((tuple(row[:columns]) for row in rows), key=repr)


async def filled_sqlite_store(
    make_broker: BrokerFactory, simulator: PlatformSimulator, tmp_path: Path
) -> Path:
    """The broker's own SQLite file after a delivered subscription, a dead letter and a parked
    one, the broker stopped (as the operator must before copying)."""
    client = await make_broker()
    simulator.fail_next(1, status=400)
    dead = subscription_event(subscription_id="100000000000000001", event_id="c-1")
    assert (await post_event(client, dead)).status == 200
    await eventually(lambda: delivery_ids(client, "100000000000000001"))
    (dead_id,) = await delivery_ids(client, "100000000000000001")
    await wait_for_state(client, dead_id, "dead")
    sent = subscription_event(
        subscription_id="100000000000000002", zgid="70000000002", event_id="c-2"
    )
    assert (await post_event(client, sent)).status == 200
    await eventually(lambda: delivery_ids(client, "100000000000000002"))
    (sent_id,) = await delivery_ids(client, "100000000000000002")
    await wait_for_state(client, sent_id, "done")
    parked = subscription_event(
        subscription_id="100000000000000003",
        zuid=None,
        zgid=None,
        customer_id="900000000000000009",
        event_id="c-3",
    )
    assert (await post_event(client, parked)).status == 200
    await client.close()
    return tmp_path / "broker.db"


async def test_copy_keeps_every_row_and_id_and_a_pg_broker_carries_on_past_them(
    make_broker: BrokerFactory,
    simulator: PlatformSimulator,
    tmp_path: Path,
    postgres_url: str,
    capsys,
):
    source = await filled_sqlite_store(make_broker, simulator, tmp_path)
    before = sqlite_tables(source)
    assert len(before["deliveries"]) == 2
    assert len(before["webhook_events"]) == 3
    target = with_password(postgres_url)

    code, out, err = run_cli(capsys, "copy-store", "--from", str(source), "--to", target)

    assert code == 0, err
    assert PASSWORD not in out + err
    assert f":***@{urlsplit(postgres_url).hostname}" in out
    for table, rows in before.items():
        assert f"  {table}" in out
        assert pg_rows(postgres_url, table, len(rows[0]) if rows else 0) == rows, table
    total = sum(len(rows) for rows in before.values())
    assert f"copied {total} rows in {len(before)} tables" in out
    assert "stop the broker first" in out

    copied_max = max(row[0] for row in before["deliveries"])
    client = await make_broker(store={"url": postgres_url})
    fresh = subscription_event(
        subscription_id="100000000000000004", zgid="70000000004", event_id="c-4"
    )
    assert (await post_event(client, fresh)).status == 200
    await eventually(lambda: delivery_ids(client, "100000000000000004"))
    (new_id,) = await delivery_ids(client, "100000000000000004")
    assert new_id == copied_max + 1
    await wait_for_state(client, new_id, "done")
    events = await db_rows(client, "SELECT event_id FROM webhook_events ORDER BY event_id")
    assert [e["event_id"] for e in events] == ["c-1", "c-2", "c-3", "c-4"]

    code, out, err = run_cli(capsys, "copy-store", "--from", str(source), "--to", target)
    assert code == 1
    assert "the target already holds broker rows (table " in err
    assert PASSWORD not in out + err
    assert len(pg_rows(postgres_url, "webhook_events", 1)) == 4  # nothing added


def test_copy_store_wants_a_postgresql_target_and_an_existing_source(tmp_path: Path, capsys):
    code, _, err = run_cli(capsys, "copy-store", "--to", str(tmp_path / "other.db"))
    assert code == 2
    assert "--to must be a postgresql:// URL" in err
    missing = tmp_path / "missing.db"
    code, _, err = run_cli(
        capsys, "copy-store", "--from", str(missing), "--to", "postgresql://u@127.0.0.1:19499/x"
    )
    assert code == 1
    assert f"no database at {missing}" in err
