"""The store's upkeep: ``broker backup``, ``mark-restored``, ``check-db``, ``migrate`` and
``copy-store``, on SQLite or PostgreSQL.

They open the store directly (``store_target``), so they work whether or not the service runs.
``backup`` copies the database safely while it runs and marks the copy as a backup, so a broker
started on it reconciles before sending; ``mark-restored`` does the same for a store restored by
other tools; ``check-db`` runs the integrity check (PostgreSQL: reachable, schema up to date).

``migrate`` brings the configured store's schema up to date and says what it applied; on
PostgreSQL it takes the advisory lock replicas take at start-up, so it is safe while they run.
``copy-store`` moves a SQLite store into an empty PostgreSQL database (``store.copy_store``).
What they print never holds the URL's password.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from broker.cli.store_target import (
    is_postgres,
    open_existing,
    parse_target,
    run_write,
    sqlite_source,
    store_target,
)
from broker.store import generation, integrity
from broker.store.engine import sqlite
from broker.store.migrations import SCHEMA
from broker.store.migrations.runner import apply_migrations
from broker.store.opening import migrate_postgres, postgres_schema_status

EXIT_UNSUPPORTED = 2  # asked of PostgreSQL what only SQLite does (backup of a file)


def add_commands(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: argparse.ArgumentParser,
) -> None:
    """Register ``migrate`` and ``copy-store`` on ``broker``'s parser."""
    migrate_parser = subcommands.add_parser(
        "migrate",
        help="apply pending schema migrations to the store (safe while replicas run)",
        parents=[config_option],
    )
    migrate_parser.add_argument(
        "--db", default=None, help="file, sqlite:///path or postgresql://... (default: settings)"
    )
    migrate_parser.set_defaults(handler=partial(migrate, environ=os.environ))
    copy = subcommands.add_parser(
        "copy-store",
        help="copy the SQLite store into an empty PostgreSQL database (stop the broker first)",
        parents=[config_option],
    )
    copy.add_argument("--to", required=True, help="postgresql://... (an empty database)")
    copy.add_argument("--from", dest="source", default=None, help="SQLite file (default: settings)")
    copy.set_defaults(handler=partial(copy_store, environ=os.environ))


def migrate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    target = store_target(args, environ)
    if is_postgres(target):
        from broker.store.engine import pg_admin

        try:
            with pg_admin.connect(str(target)) as tx:
                applied = migrate_postgres(tx)
        except pg_admin.PgUnreachable as exc:
            print(str(exc), file=sys.stderr)
            return 1
        where = pg_admin.shown_url(str(target))
    else:
        path = Path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite.connect(path)
        except (OSError, sqlite3.Error) as exc:
            print(f"cannot open the database at {path}: {exc}", file=sys.stderr)
            return 1
        try:
            applied = apply_migrations(db)
        finally:
            db.conn.close()
        where = str(path)
    if not applied:
        print(f"{where}: up to date ({len(SCHEMA)} migrations applied)")
        return 0
    print(f"{where}: applied {len(applied)} migrations")
    for name in applied:
        print(f"  {name}")
    return 0


def copy_store(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from broker.store import copy_store as copying
    from broker.store.engine import pg_admin

    if not is_postgres(args.to):
        print("--to must be a postgresql:// URL", file=sys.stderr)
        return 2
    source = parse_target(args.source) if args.source else store_target(args, environ)
    if is_postgres(source):
        print("the source must be a SQLite file (pass --from PATH)", file=sys.stderr)
        return 2
    path = Path(source)
    if not path.is_file():
        print(f"no database at {path}", file=sys.stderr)
        return 1
    target = pg_admin.shown_url(args.to)
    print(
        f"copying {path} to {target}; stop the broker first: rows it writes meanwhile stay behind"
    )
    try:
        with pg_admin.connect(args.to) as tx:
            conn = sqlite_source(path)
            try:
                copied = copying.copy_sqlite_to_pg(conn, tx)
            finally:
                conn.close()
    except (pg_admin.PgUnreachable, copying.CopyRefused) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    width = max((len(table.table) for table in copied), default=0)
    for table in copied:
        print(f"  {table.table:<{width}}  {table.rows:>8}  (counts match)")
    print(f"copied {sum(t.rows for t in copied)} rows in {len(copied)} tables to {target}")
    return 0


def check_pg(url: str) -> int:
    """``check-db`` on PostgreSQL: can it be reached, and is its schema the one this code runs."""
    from broker.store.engine import pg_admin

    shown = pg_admin.shown_url(url)
    try:
        with pg_admin.connect(url) as tx:
            status = postgres_schema_status(tx)
    except pg_admin.PgUnreachable as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if status is None:
        print(f"{shown}: reachable, but no broker schema: run `broker migrate`", file=sys.stderr)
        return 1
    applied, pending = status
    if pending:
        print(
            f"{shown}: reachable; schema behind (pending: {', '.join(pending)}): "
            "run `broker migrate`",
            file=sys.stderr,
        )
        return 1
    print(f"{shown}: reachable; schema up to date ({len(applied)} migrations)")
    return 0


def backup_pg(url: str) -> int:
    """A PostgreSQL store is backed up by PostgreSQL's own tools, not by the broker."""
    from broker.store.engine.pg_admin import shown_url

    print(
        "the store is PostgreSQL: back it up with PostgreSQL's tools, e.g.\n"
        f"  pg_dump -Fc -d '{shown_url(url)}' -f broker.dump\n"
        "and restore into an empty database with\n"
        "  pg_restore -d postgresql://... broker.dump",
        file=sys.stderr,
    )
    return EXIT_UNSUPPORTED


def backup(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    target = store_target(args, environ)
    if is_postgres(target):
        return backup_pg(str(target))
    source = Path(target)
    if not source.is_file():
        print(f"no database at {source}", file=sys.stderr)
        return 1
    try:
        sqlite.backup(source, args.destination)
    except FileExistsError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"backed up {source} to {args.destination}")
    marked = _mark_copy(args.destination)
    if marked is not None:
        print(
            f"marked as a backup of generation {marked.restored_from}: a broker started on it "
            "supersedes its pending deliveries and reconciles with billing before sending"
        )
    if args.verify:
        return _report_integrity(args.destination)
    return 0


def _mark_copy(copy: Path) -> generation.Generation | None:
    """Mark the fresh copy as restored, so starting a broker on it is safe (None: the store's
    schema predates the marker; the operator runs ``broker mark-restored`` after restoring)."""
    why = "its schema predates the restore marker"
    try:
        with open_existing(copy) as db:
            if generation.has_marker(db):
                return run_write(
                    db,
                    partial(
                        generation.mark_restored, by=generation.MarkedBy.BACKUP, now=time.time()
                    ),
                )
    except sqlite3.DatabaseError as exc:  # a damaged copy: --verify says more
        why = str(exc)
    print(
        f"the copy is not marked as a backup ({why}): after restoring it, run "
        "`broker migrate` and `broker mark-restored` before starting the broker",
        file=sys.stderr,
    )
    return None


def mark_restored(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """After a restore by other tools (pg_restore, a copied file): the next broker to start
    supersedes the restored outbox and reconciles with billing before it sends anything."""
    with open_existing(store_target(args, environ)) as db:
        if not generation.has_marker(db):
            print(
                "this store's schema predates the restore marker: run `broker migrate` on it "
                "first (with the same --db), then `broker mark-restored`",
                file=sys.stderr,
            )
            return 1
        marked = run_write(
            db, partial(generation.mark_restored, by=generation.MarkedBy.OPERATOR, now=time.time())
        )
    print(
        f"store marked restored (generation {marked.number}, "
        f"stage {marked.stage.value if marked.stage else '-'}): the next broker to start "
        "supersedes its pending deliveries and reconciles with billing before sending"
    )
    return 0


def check_db(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    target = store_target(args, environ)
    if is_postgres(target):
        return check_pg(str(target))
    path = Path(target)
    if not path.is_file():
        print(f"no database at {path}: pass --db or set BROKER_STORE__PATH", file=sys.stderr)
        return 1
    return _report_integrity(path)


def _report_integrity(path: Path) -> int:
    problems = integrity.integrity_problems(path)
    if not problems:
        print(f"integrity check of {path}: ok")
        return 0
    print(f"integrity check of {path} FAILED:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
