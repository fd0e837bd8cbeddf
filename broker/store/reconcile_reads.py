"""What the console reads of reconciliation: recorded runs (filtered by start time and outcome,
paged) and the drift each run found. Reads only."""

from __future__ import annotations

from dataclasses import dataclass

from broker.store.engine.tx import SqlValue, Tx
from broker.store.ops_reads import OpsFilter, Page
from broker.store.sql import as_record, select_all

_RUN_COLUMNS = (
    "id, started_at, finished_at, trigger, dry_run, since, outcome, events_read, events_fed,"
    " subscriptions_read, full_reads, customers_read, missing_in_billing, drift, queued, error"
)


@dataclass(frozen=True)
class RunRow:
    id: int
    started_at: float
    finished_at: float | None
    trigger: str
    dry_run: int
    since: str | None
    outcome: str
    events_read: int
    events_fed: int
    subscriptions_read: int
    full_reads: int
    customers_read: int
    missing_in_billing: int
    drift: int
    queued: int
    error: str | None


@dataclass(frozen=True)
class DriftRow:
    id: int
    subscription_id: str
    kind: str
    billing: str
    broker: str
    action: str
    delivery_id: int | None


def runs(db: Tx, where: OpsFilter) -> Page[RunRow]:
    """Runs, newest first; ``state`` filters on the outcome, since/until on the start."""
    clauses: list[str] = ["1 = 1"]
    params: list[SqlValue] = []
    if where.state:
        clauses.append("outcome = ?")
        params.append(where.state)
    if where.since is not None:
        clauses.append("started_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("started_at < ?")
        params.append(where.until)
    found = select_all(
        db,
        f"SELECT {_RUN_COLUMNS} FROM reconcile_runs WHERE {' AND '.join(clauses)}"  # noqa: S608 - ours
        " ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, *where.bounds()],
    )
    rows = [as_record(RunRow, row) for row in found]
    return Page(rows[: where.page_size], len(rows) > where.page_size)


def run(db: Tx, run_id: int) -> RunRow | None:
    found = select_all(
        db,
        f"SELECT {_RUN_COLUMNS} FROM reconcile_runs WHERE id = ?",  # noqa: S608 - ours
        [run_id],
    )
    return as_record(RunRow, found[0]) if found else None


def drift(db: Tx, run_id: int) -> list[DriftRow]:
    found = select_all(
        db,
        "SELECT id, subscription_id, kind, billing, broker, action, delivery_id"
        " FROM reconcile_drift WHERE run_id = ? ORDER BY id",
        [run_id],
    )
    return [as_record(DriftRow, row) for row in found]
