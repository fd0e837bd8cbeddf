"""The test tree stays navigable (docs/development.md, "The test tree"): every test file sits in
the folder of its kind, the helpers in the support package (a test module imports helpers from
there, never from another test module), and a unit test starts nothing (no server, no database,
no subprocess, no browser), so ``pytest tests/unit`` stays a few seconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
KINDS = {"unit", "integration", "browser", "system"}
# tests/ itself: the fixtures every folder shares, the package marker, and the folders.
AT_THE_TOP = {"conftest.py", "__init__.py"}
# Fixtures (tests/conftest.py and the support modules) that start a server, a store or a world.
RUNNING_FIXTURES = {
    "aiohttp_client",
    "aiohttp_server",
    "broker",
    "make_broker",
    "broker_store",
    "platform_server",
    "make_world",
    "world",
    "owner",
    "live",
    "make_zoho",
    "zoho",
    "store_url",
    "empty_store_url",
    "postgres_url",
    "postgres_server",
    "migrated_postgres_url",
}
RUNNING_IMPORTS = {"subprocess", "aiohttp.test_utils", "playwright", "psycopg", "sqlite3"}
# What a module of the test tree may import from it: the shared fixtures, the helpers, the data.
SHARED = ("tests.conftest", "tests.support", "tests.fixtures")


def imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def imports_from_the_tree(tree: ast.Module) -> set[str]:
    """What ``tree`` imports from the test tree, each name spelled out (``from tests.unit import
    test_decide`` is ``tests.unit.test_decide``); a relative import, by its dots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "tests"}
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tests":
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def requested_fixtures(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names |= {arg.arg for arg in node.args.args}
    return names


def test_tests_sit_in_folders_by_kind_beside_one_support_package() -> None:
    top_files = {path.name for path in TESTS.iterdir() if path.is_file()}
    folders = {path.name for path in TESTS.iterdir() if path.is_dir() and path.name[0] not in "_."}

    assert top_files <= AT_THE_TOP, "test files and helpers go in a folder by kind or in support/"
    assert folders == KINDS | {"support", "fixtures"}
    assert not list((TESTS / "support").glob("test_*.py")), "support/ holds helpers, not tests"


def test_a_unit_test_starts_no_server_store_subprocess_or_browser() -> None:
    offenders: dict[str, set[str]] = {}
    for path in sorted((TESTS / "unit").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        running = requested_fixtures(tree) & RUNNING_FIXTURES
        running |= {
            name
            for name in imported_modules(tree)
            if any(name == bad or name.startswith(f"{bad}.") for bad in RUNNING_IMPORTS)
        }
        if running:
            offenders[path.name] = running

    assert offenders == {}, "move these to tests/integration or tests/system"


def test_no_test_module_imports_from_another_test_module() -> None:
    """A helper two test files share lives in tests/support (fixtures: a plugin listed in
    tests/conftest.py), so running, moving or deleting one test file never breaks another."""
    offenders: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        imported = imports_from_the_tree(ast.parse(path.read_text()))
        outside = sorted(
            name
            for name in imported
            if not any(name == shared or name.startswith(f"{shared}.") for shared in SHARED)
        )
        if outside:
            offenders[str(path.relative_to(TESTS))] = outside

    assert offenders == {}, "move the helpers these import into tests/support"
