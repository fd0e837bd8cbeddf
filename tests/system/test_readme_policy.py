"""The customer page's "What each status allows" table (docs/customer-page.md) says what the
code does: it is checked against ``broker.core.policy``, so the docs cannot drift from the rule."""

from __future__ import annotations

import re
from pathlib import Path

from broker.core.billing_status import BillingStatus
from broker.core.policy import (
    NEEDS_TERM,
    NO_SUBSCRIPTION,
    STATUS_ACTIONS,
    Action,
)

CUSTOMER_PAGE = Path(__file__).resolve().parents[2] / "docs" / "customer-page.md"


def status_table() -> dict[str, dict[str, str]]:
    """Rows of the table under '### What each status allows': status -> action -> cell."""
    text = CUSTOMER_PAGE.read_text()
    section = text.split("### What each status allows", 1)[1].split("\n### ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip().lower() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = dict(zip(header[1:], cells[1:], strict=True))
    return rows


def test_status_table_has_a_row_for_every_status_and_one_for_none():
    assert set(status_table()) == {s.value for s in BillingStatus} | {"no subscription"}


def test_status_table_matches_the_rule():
    rows = status_table()
    for status, allowed in [*STATUS_ACTIONS.items(), (None, NO_SUBSCRIPTION)]:
        row = rows[status.value if status else "no subscription"]
        for action in Action:
            cell = row[action.value]
            if action not in allowed:
                assert cell == "", (status, action, cell)
            elif status is not None and status in NEEDS_TERM.get(action, frozenset()):
                assert cell == "✓ in term", (status, action, cell)
            else:
                assert re.fullmatch("✓", cell), (status, action, cell)
