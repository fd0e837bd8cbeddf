"""What the operator reads of the outbox: one delivery by its id, a list bounded in SQL, typed
rows whose state is a ``DeliveryState``, and the counts monitoring exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker import cli
from broker.store.delivery_records import (
    DeliveryRecord,
    delivery_attempts,
    get_delivery,
    list_deliveries,
    outbox_summary,
)
from broker.store.engine.sqlite import connect
from broker.store.migrations.runner import apply_migrations
from broker.store.outbox import DeliveryState


@pytest.fixture
def db(tmp_path: Path) -> Any:
    """A migrated database with one subscription and deliveries 1-5: 1-4 done, 5 dead."""
    database = connect(tmp_path / "broker.db")
    apply_migrations(database)
    database.execute("INSERT INTO subscriptions (subscription_id, updated_at) VALUES ('9001', 0)")
    for number in range(1, 6):
        database.execute(
            "INSERT INTO deliveries (id, subscription_id, target_json, cause, state, attempts,"
            " created_at, next_attempt_at, last_status, last_error)"
            " VALUES (?, '9001', '{}', 'event 1', ?, 1, ?, 0, ?, ?)",
            [
                number,
                "dead" if number == 5 else "done",
                100.0 + number,
                400 if number == 5 else 200,
                "HTTP 400" if number == 5 else None,
            ],
        )
    database.execute(
        "INSERT INTO attempts (delivery_id, started_at, latency_ms, method, url, request_body,"
        " status, outcome, error) VALUES (5, 104, 12.5, 'POST', 'https://p/x', '{}', 400,"
        " 'reject', 'HTTP 400')"
    )
    yield database
    database.close()


def test_one_delivery_is_read_by_its_id_as_a_typed_row(db: Any) -> None:
    assert get_delivery(db, 5) == DeliveryRecord(
        id=5,
        subscription_id="9001",
        state=DeliveryState.DEAD,
        action=None,
        attempts=1,
        uncertain=False,
        cause="event 1",
        created_at=105.0,
        next_attempt_at=0.0,
        finished_at=None,
        last_status=400,
        last_error="HTTP 400",
    )
    assert get_delivery(db, 6) is None


def test_the_list_is_newest_first_and_bounded(db: Any) -> None:
    assert [record.id for record in list_deliveries(db, limit=2)] == [5, 4]
    assert [record.id for record in list_deliveries(db, state=DeliveryState.DONE)] == [4, 3, 2, 1]


def test_attempts_are_typed_rows(db: Any) -> None:
    [attempt] = delivery_attempts(db, 5)
    assert (attempt.method, attempt.status, attempt.outcome, attempt.latency_ms) == (
        "POST",
        400,
        "reject",
        12.5,
    )


def test_summary_counts_every_state_even_when_none_is_in_it(db: Any) -> None:
    summary = outbox_summary(db, now=200.0)
    assert summary.counts == {
        DeliveryState.PENDING: 0,
        DeliveryState.IN_FLIGHT: 0,
        DeliveryState.DONE: 4,
        DeliveryState.DEAD: 1,
        DeliveryState.SUPERSEDED: 0,
    }
    assert summary.oldest_pending_seconds == 0.0


def test_show_of_an_unknown_id_says_so(
    db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deliveries", "show", "42", "--db", str(tmp_path / "broker.db")]) == 1
    assert "no delivery with id 42" in capsys.readouterr().err
