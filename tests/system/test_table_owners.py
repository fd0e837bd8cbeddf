"""Every table has one module that writes it: the SQL in ``broker/`` is read, not trusted.

Each module outside the simulators and the migrations is parsed; its string constants and the
literal parts of its f-strings are searched for ``INSERT [OR ...] INTO``, ``REPLACE INTO``,
``UPDATE`` and ``DELETE FROM`` targets, and each ``upsert(db, "table", ...)`` call counts as a
write by its caller. A write by any module but the table's owner fails, naming both. The owners
are listed in docs/architecture.md, "Who writes which table", and the two lists must agree.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from broker.store.engine.sqlite import connect
from broker.store.migrations.runner import MIGRATIONS_TABLE, apply_migrations

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "broker"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# The agreed owner of every table: one module writes each table (docs/architecture.md).
OWNERS: dict[str, str] = {
    "subscriptions": "broker/store/subscriptions.py",
    "webhook_events": "broker/store/events.py",
    "deliveries": "broker/store/outbox.py",
    "attempts": "broker/store/outbox.py",
    "customers": "broker/store/identity.py",
    "users": "broker/store/identity.py",
    "landing_claims": "broker/store/identity.py",
    "audit_log": "broker/store/audit.py",
    "checkouts": "broker/store/checkouts.py",
    "oidc_flows": "broker/store/oidc_flows.py",
    "landing_nonces": "broker/store/nonces.py",
    "binding_requests": "broker/store/binding_requests.py",
    "billing_products": "broker/store/products.py",
    "money_events": "broker/store/money_events.py",
    "webhook_refusals": "broker/store/refusals.py",
    "reconcile_lock": "broker/store/reconcile.py",
    "reconcile_state": "broker/store/reconcile.py",
    "reconcile_runs": "broker/store/reconcile.py",
    "reconcile_drift": "broker/store/reconcile.py",
    "billing_missing": "broker/store/reconcile_missing.py",
    "store_generation": "broker/store/generation.py",
    "ops_sessions": "broker/store/ops_sessions.py",
    "billing_call_budget": "broker/store/billing_budget.py",
    "retention_lease": "broker/store/retention_lease.py",
    # Not made by a migration: the readiness probe creates its own one-row table.
    "readiness_heartbeat": "broker/store/heartbeat.py",
}

# Modules whose writes name no table in their text, each with why that is allowed.
DYNAMIC_WRITERS = {
    "broker/store/sql.py": "the upsert helper; each call is counted against its caller",
    "broker/store/copy_store.py": "copies every table, row for row, into a new store",
}

# Not searched: the simulators are other services; migrations (and the schema modules holding
# them) create tables, convert rows once and record themselves, which no owner does.
SKIPPED = (
    "broker/simulators/",
    "broker/store/migrations/",
)

# The migration runner's record of what it applied, and SQLite's own counters.
ENGINE_TABLES = {MIGRATIONS_TABLE, "sqlite_sequence"}

_WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|DELETE\s+FROM|UPDATE)\s+"
    r"(?!SET\b|OF\b)(\{\}|[A-Za-z_][\w.]*)",
    re.IGNORECASE,
)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of docstring nodes: prose, where "update the row" is not SQL."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _texts(tree: ast.AST) -> Iterator[str]:
    """String constants, and each f-string with its holes as ``{}``."""
    prose = _docstrings(tree)
    parts_of_fstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            pieces = []
            for value in node.values:
                parts_of_fstrings.add(id(value))
                is_text = isinstance(value, ast.Constant) and isinstance(value.value, str)
                pieces.append(value.value if is_text else "{}")  # type: ignore[union-attr]
            yield "".join(pieces)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in prose
            and id(node) not in parts_of_fstrings
        ):
            yield node.value


def _upserted(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or len(node.args) < 2:
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        table = node.args[1]
        if name == "upsert" and isinstance(table, ast.Constant) and isinstance(table.value, str):
            yield table.value


def written_tables(source: str) -> set[str]:
    """The tables a module's source writes; ``{}`` for a write whose table is not in the text."""
    tree = ast.parse(source)
    tables = {m.group(1).lower() for text in _texts(tree) for m in _WRITE.finditer(text)}
    return tables | set(_upserted(tree))


def writes_by_module() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module.startswith(SKIPPED):
            continue
        tables = written_tables(path.read_text(encoding="utf-8"))
        if tables:
            found[module] = tables
    return found


def test_the_search_finds_every_form_of_write() -> None:
    source = '''
"""Docstring: UPDATE prose FROM here is not SQL."""
def f(db, table):
    db.execute("INSERT INTO alpha (a) VALUES (?)")
    db.execute("INSERT OR IGNORE INTO beta (a) VALUES (?)")
    db.execute("REPLACE INTO gamma (a) VALUES (?)")
    db.execute("UPDATE delta SET a = 1 WHERE b IN (SELECT b FROM zeta FOR UPDATE OF zeta)")
    db.execute("DELETE FROM epsilon WHERE a = ?")
    db.execute(f"update {table} set a = 1")
    db.execute("INSERT INTO eta (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET a = excluded.a")
    upsert(db, "theta", {"a": 1}, key="a")
'''
    assert written_tables(source) == {
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "{}",
        "eta",
        "theta",
    }


def test_every_table_is_written_only_by_its_owner() -> None:
    strays = []
    for module, tables in writes_by_module().items():
        for table in sorted(tables):
            if table == "{}":
                if module not in DYNAMIC_WRITERS:
                    strays.append(f"{module} writes a table named only at run time")
                continue
            owner = OWNERS.get(table)
            if owner is None:
                strays.append(f"{module} writes {table}, which has no owner in OWNERS")
            elif owner != module:
                strays.append(f"{module} writes {table}, whose owner is {owner}")
    assert not strays, "\n".join(strays)


def test_every_table_of_a_fresh_schema_has_an_owner(tmp_path: Path) -> None:
    db = connect(tmp_path / "fresh.db")
    apply_migrations(db)
    rows = db.select_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = {str(row["name"]) for row in rows} - ENGINE_TABLES
    assert tables - set(OWNERS) == set()
    # And no owner names a table the schema lost (the heartbeat's table is made on first use).
    assert set(OWNERS) - tables == {"readiness_heartbeat"}


def test_every_owner_writes_its_table_somewhere() -> None:
    written = writes_by_module()
    unwritten = [t for t, owner in OWNERS.items() if t not in written.get(owner, set())]
    assert not unwritten, f"owners that never write their table: {unwritten}"


def test_the_architecture_page_lists_the_same_owners() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Who writes which table", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^\| `(\w+)` \| `([\w/.]+)` \|", section, re.MULTILINE))
    assert listed == OWNERS


def test_writes_to_deliveries_bind_the_state_enum() -> None:
    """A state spelled in SQL escapes ``DeliveryState``: a renamed value would still parse."""
    literal = re.compile(r"\bstate\s*(?:=|!=|<>|IN\s*\()\s*'", re.IGNORECASE)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module.startswith(SKIPPED):
            continue
        for text in _texts(ast.parse(path.read_text(encoding="utf-8"))):
            writes = {m.group(1).lower() for m in _WRITE.finditer(text)}
            if "deliveries" in writes and literal.search(text):
                found.append(f"{module}: {text.strip()[:60]}")
    assert not found, "\n".join(found)
