"""The store's generation marker (table ``store_generation``, one row): whether this store is a
restored backup whose outbox must not be sent as it stands.

A backup copy is marked "restored" as it is made (``broker backup``); a PostgreSQL restore is
marked by ``broker mark-restored``. A broker that starts on a marked store supersedes the stale
outbox (``supersede_stale``), reconciles with billing, re-asserts each subscription's state and
then clears the mark, which moves the store to the next generation (``finish_restore``). The
stages are written here only; every function runs inside a store transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from broker.store import audit, outbox, subscriptions
from broker.store.engine.tx import Dialect, SqlValue, Tx
from broker.store.sql import (
    as_int,
    number_or_none,
    select_one,
    text,
    upsert,
    whole_or_none,
)


class RestoreStage(StrEnum):
    """Where a restored store stands; a live store has none."""

    RESTORED = "restored"  # marked, nothing done yet: its outbox is stale
    SUPERSEDED = "superseded"  # the stale outbox is superseded; billing not yet read again


class MarkedBy(StrEnum):
    BACKUP = "backup"  # ``broker backup`` marked its copy
    OPERATOR = "mark-restored"  # ``broker mark-restored`` after a restore by other tools


@dataclass(frozen=True)
class Generation:
    number: int
    stage: RestoreStage | None
    restored_from: int | None  # the generation the backup was taken of
    backup_taken_at: float | None
    marked_by: MarkedBy | None

    @property
    def restore_pending(self) -> bool:
        return self.stage is not None


def has_marker(db: Tx) -> bool:
    """Whether this store's schema has the marker's table (a store not yet migrated has not)."""
    if db.dialect is Dialect.POSTGRESQL:
        found = select_one(db, "SELECT to_regclass('store_generation') AS t")
        return found is not None and found["t"] is not None
    return (
        select_one(
            db,
            "SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = ?",
            ["store_generation"],
        )
        is not None
    )


def current(db: Tx) -> Generation:
    row = select_one(db, "SELECT * FROM store_generation WHERE id = 1")
    if row is None:  # never marked: the migration writes no row
        return Generation(1, None, None, None, None)
    return Generation(
        number=as_int(row, "generation"),
        stage=RestoreStage(text(row, "restore_stage")) if row["restore_stage"] else None,
        restored_from=whole_or_none(row, "restored_from"),
        backup_taken_at=number_or_none(row, "backup_taken_at"),
        marked_by=MarkedBy(text(row, "marked_by")) if row["marked_by"] else None,
    )


def mark_restored(db: Tx, *, by: MarkedBy, now: float, taken_at: float | None = None) -> Generation:
    """Mark this store as restored from a copy of its current generation. Marking a store that
    is already marked keeps the first mark (its stage and when the copy was taken)."""
    before = current(db)
    if before.restore_pending:
        return before
    _write(
        db,
        before.number,
        stage=RestoreStage.RESTORED,
        restored_from=before.number,
        backup_taken_at=taken_at if taken_at is not None else now,
        marked_at=now,
        marked_by=by.value,
    )
    return current(db)


def _write(db: Tx, number: int, *, stage: RestoreStage | None, **columns: SqlValue) -> None:
    values: dict[str, SqlValue] = {
        "id": 1,
        "generation": number,
        "restore_stage": stage.value if stage else None,
    }
    values |= columns
    upsert(db, "store_generation", values, key="id")


def supersede_stale(db: Tx, *, now: float) -> list[int]:
    """First stage after a restore: every delivery still pending or in flight in the copy is
    superseded (never sent), each subscription's queued state goes back to what the platform
    last acknowledged (so billing's state, once read, is queued wherever it differs), and an
    audit row says so. Returns the superseded deliveries; does nothing unless just restored."""
    marked = current(db)
    if marked.stage is not RestoreStage.RESTORED:
        return []
    reason = (
        f"superseded: the store was restored from a backup of generation {marked.restored_from};"
        " billing is read again before anything is sent"
    )
    stale = outbox.supersede_all_unfinished(db, now=now, reason=reason)
    subscriptions.queue_back_to_acknowledged(db)
    _write(db, marked.number, stage=RestoreStage.SUPERSEDED)
    audit.record_action(
        db,
        at=now,
        zuid="-",
        zgid="-",
        action="store.restore_superseded",
        result="ok",
        detail={
            "restored_from": marked.restored_from,
            "backup_taken_at": marked.backup_taken_at,
            "marked_by": marked.marked_by.value if marked.marked_by else None,
            "superseded_deliveries": stale,
        },
    )
    return stale


def finish_restore(db: Tx, *, now: float, run_id: int | None) -> Generation:
    """Last stage: billing was read again and each state re-asserted; the store becomes the next
    generation with no restore pending."""
    marked = current(db)
    if marked.stage is None:
        return marked
    _write(db, marked.number + 1, stage=None, marked_at=None)
    audit.record_action(
        db,
        at=now,
        zuid="-",
        zgid="-",
        action="store.restore_reconciled",
        result="ok",
        detail={"restored_from": marked.restored_from, "reconcile_run": run_id},
    )
    return current(db)
