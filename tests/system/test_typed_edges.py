"""Types reach the edges (docs/development.md, "Typed edges"): outside the simulators, no line of
the package names ``typing.Any`` unless it says why on the same line (``# Any: ...``), so every
signature reads as what it is and mypy strict checks what crosses an edge."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "broker"
ANY = re.compile(r"\bAny\b")
REASON = re.compile(r"#\s*Any:\s*\S")


def unexplained_any(package: Path) -> list[tuple[str, int]]:
    """(module, line number) of each line naming Any without a reason; simulators excepted."""
    found: list[tuple[str, int]] = []
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        if module.startswith("simulators/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if ANY.search(line) and not REASON.search(line):
                found.append((module, number))
    return found


def test_no_any_outside_the_simulators_without_a_stated_reason() -> None:
    assert unexplained_any(PACKAGE) == []


def test_the_search_finds_an_any_and_accepts_one_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "simulators").mkdir()
    (tmp_path / "simulators" / "fake.py").write_text("from typing import Any\n", encoding="utf-8")
    (tmp_path / "edge.py").write_text(
        "from typing import Any\n"
        "def read(body: dict[str, Any]) -> None: ...\n"
        "Row = dict[str, Any]  # Any: psycopg's rows are generic over what we do not fix\n"
        "Anything = 1  # a word that only starts with the name is not it\n"
        "x: 'typing.Any' = 1\n",
        encoding="utf-8",
    )

    assert unexplained_any(tmp_path) == [("edge.py", 1), ("edge.py", 2), ("edge.py", 5)]
