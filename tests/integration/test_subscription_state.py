"""``subscriptions.state`` is a ``SubscriptionState`` and ``reason`` is prose: a store whose rows
the old code marked in one ``decision`` column migrates to the two, the column refuses a value
outside the enum, no SQL in ``broker/`` reads the retired columns, and the architecture page
lists every value."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.core.subscription_state import SubscriptionState
from broker.store.engine.postgres import PgTx
from broker.store.engine.sqlite import connect
from broker.store.engine.tx import SqliteTx, Tx
from broker.store.migrations import SCHEMA
from broker.store.migrations.runner import MIGRATIONS_TABLE, apply_migrations

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LAST_BEFORE_STATE = "m010_missing_in_billing"  # the newest migration on main before the state

# Rows as the code before the state column wrote them (``decide.Mark(decision, parked_reason)``),
# each with the state and reason its meaning calls for.
PARKED_WHY = "zuid and zgid unknown: billing customer has no cf_zuid"
CONFLICT_WHY = (
    "conflict: the organisation already has subscription 1, which the platform keeps; "
    "nothing is sent for 2 (a duplicate to cancel)"
)
WARNED_WHY = "status live; warning: plan code testapp_1001 is monthly but billing bills yearly"
OLD_ROWS: list[tuple[dict[str, Any], tuple[str | None, str | None]]] = [
    ({"decision": "parked", "parked_reason": PARKED_WHY}, ("parked", PARKED_WHY)),
    ({"decision": "ignored"}, ("ignored", None)),
    ({"decision": "unmapped_plan"}, ("unmapped_plan", None)),
    ({"decision": CONFLICT_WHY}, ("conflict", CONFLICT_WHY)),
    ({"decision": "status live"}, ("applied", "status live")),
    ({"decision": WARNED_WHY}, ("applied", WARNED_WHY)),
    ({"decision": "access withheld after refund 7"}, ("applied", "access withheld after refund 7")),
    (
        {"decision": "status deleted", "billing_source": "reconcile:missing_in_billing"},
        ("missing_in_billing", "status deleted"),
    ),
    ({"decision": None}, (None, None)),  # billing described it, nothing decided yet
]


def migrated_as_main_left_it(db: Tx) -> None:
    """Migrations 1-10 applied and recorded, as main's store stood before the state column."""
    names = [migration.name for migration in SCHEMA]
    db.execute(f"CREATE TABLE {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in SCHEMA[: names.index(LAST_BEFORE_STATE) + 1]:
        for statement in migration.sql(db.dialect):
            db.execute(statement)
        db.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, 'then')", [migration.name])  # noqa: S608


def store_as_main_made_it(path: Path) -> SqliteTx:
    """A SQLite store migrated only as far as main went before the state column."""
    db = connect(path)
    migrated_as_main_left_it(db)
    return db


def insert_old_rows(db: Tx) -> None:
    for number, (columns, _) in enumerate(OLD_ROWS):
        row = {"subscription_id": str(9000 + number), "updated_at": 0.0, **columns}
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        db.execute(f"INSERT INTO subscriptions ({names}) VALUES ({marks})", list(row.values()))  # noqa: S608


def converted(db: Tx) -> list[tuple[str | None, str | None]]:
    rows = db.select_all("SELECT state, reason FROM subscriptions ORDER BY subscription_id")
    return [(r["state"], r["reason"]) for r in rows]


def test_rows_the_old_code_marked_migrate_to_a_state_and_a_reason(tmp_path: Path) -> None:
    db = store_as_main_made_it(tmp_path / "old.db")
    insert_old_rows(db)

    applied = apply_migrations(db)

    assert "m012_subscription_state_and_reason" in applied
    assert converted(db) == [expected for _, expected in OLD_ROWS]


@pytest.mark.postgresql
def test_rows_the_old_code_marked_migrate_likewise_on_postgresql(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        db = PgTx(conn)
        with conn.transaction():  # as main's runner left it: migrations 1-10 recorded
            migrated_as_main_left_it(db)
            insert_old_rows(db)

        applied = apply_migrations(db)

        assert "m012_subscription_state_and_reason" in applied
        assert converted(db) == [expected for _, expected in OLD_ROWS]


@pytest.mark.parametrize("state", list(SubscriptionState))
def test_the_column_takes_every_state(tmp_path: Path, state: SubscriptionState) -> None:
    db = connect(tmp_path / "fresh.db")
    apply_migrations(db)
    db.execute(
        "INSERT INTO subscriptions (subscription_id, updated_at, state) VALUES ('1', 0, ?)",
        [state.value],
    )
    assert db.select_all("SELECT state FROM subscriptions") == [{"state": state.value}]


def test_the_column_refuses_prose(tmp_path: Path) -> None:
    db = connect(tmp_path / "fresh.db")
    apply_migrations(db)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute(
            "INSERT INTO subscriptions (subscription_id, updated_at, state) VALUES ('1', 0, ?)",
            ["status live"],
        )


def test_no_sql_in_broker_reads_the_retired_decision_columns() -> None:
    """``decision`` and ``parked_reason`` stay in the schema for older brokers only."""
    retired = re.compile(r"\b(?:s\.)?(?:decision|parked_reason)\b")
    sql = re.compile(r"\b(?:SELECT|UPDATE|INSERT|WHERE)\b")
    found = []
    for path in sorted((ROOT / "broker").rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module.startswith(("broker/simulators/", "broker/store/migrations/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and sql.search(text) and retired.search(text):
                found.append(f"{module}: {text.strip()[:70]}")
    assert not found, "\n".join(found)


def test_the_architecture_page_explains_every_state() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Subscription states", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \| \S", section, re.MULTILINE)
    assert listed == [state.value for state in SubscriptionState]
