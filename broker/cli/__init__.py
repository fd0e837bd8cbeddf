"""The ``broker`` command: the one place that reads the environment and configures logging.

broker serve            run the service
broker demo             run it offline beside a simulated Developer Console
broker check-config     validate settings and print them with secrets hidden
broker sign-link        print a fresh signed Manage Subscription link (tests, the demo)
broker deliveries ...   list deliveries, show one, retry dead letters, retry-now a pending one
broker events|parked|audit list   the operator console's lists, filtered, with human dates
broker events replay ID | --from DATE --to DATE   feed stored events through the pipeline again
broker events show ID   one webhook event, its body redacted
broker parked resolve   bind a parked subscription to an org by hand (audited)
broker ops-hash         hash the operator console's password for ops.password_hash
broker backup DEST      consistent online copy of the database (--verify: check the copy), marked
                        as a backup so a broker started on it reconciles before sending
broker mark-restored    mark a store restored by other tools (pg_restore): reconcile before sending
broker check-db         SQLite's integrity check, without a sqlite3 binary (PostgreSQL: reachable,
                        schema up to date)
broker migrate          apply pending schema migrations (SQLite or PostgreSQL)
broker copy-store --to postgresql://...   move a SQLite store into an empty PostgreSQL database
broker prune [--dry-run]   delete what [retention] no longer keeps (serve also does, hourly)
broker export-customer|erase-customer --customer-id ID | --zgid ID   one customer's data

This module parses the arguments; each command group has its own module, which registers its
actions: ``deliveries``, ``events``, ``parked``, ``console_lists`` (unmapped, audit, money, each
only a list; what the lists share is ``listing``), ``reconcile``, ``retention`` (prune and a
customer's data) and ``store_commands`` (backup, mark-restored, check-db, migrate, copy-store).
``commands`` runs the service and the demo, checks settings, signs links and hashes the console
password (``check`` adds check-config's warnings and online tests); ``settings`` loads settings
and explains what is wrong with them. Commands that open the store are handed the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from broker import __version__
from broker.cli import (
    commands,
    console_lists,
    deliveries,
    events,
    parked,
    reconcile,
    retention,
    store_commands,
)
from broker.cli.settings import EXIT_CONFIG
from broker.config import LandingVerification

__all__ = ["EXIT_CONFIG", "main"]

DB_HELP = "the store: a file, sqlite:///path or postgresql://... (default: settings)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_CONFIG
    handler = args.handler
    result: int = handler(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broker", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"broker {__version__}")
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML config file (default: $BROKER_CONFIG)"
    )
    # --config may come before or after the command; SUPPRESS keeps a later default from
    # overwriting an earlier value.
    config_option = argparse.ArgumentParser(add_help=False)
    config_option.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="TOML config file (default: $BROKER_CONFIG)",
    )
    subcommands = parser.add_subparsers(dest="command")

    serve = subcommands.add_parser("serve", help="run the service", parents=[config_option])
    serve.set_defaults(handler=commands.serve)

    demo = subcommands.add_parser(
        "demo", help="run offline beside simulated Zoho services", parents=[config_option]
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--platform-port", type=int, default=8090)
    demo.add_argument("--billing-port", type=int, default=8091)
    demo.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    demo.add_argument(
        "--reset",
        action="store_true",
        help="first remove what earlier demo runs left in the data directory (the simulated "
        "billing never survives a restart; the data directory does)",
    )
    demo.add_argument(
        "--verify",
        choices=[m.value for m in LandingVerification],
        default=LandingVerification.SIGNED.value,
        help="how landing visits are verified: signed links (default), zoho (Sign in with Zoho "
        "against a simulated Zoho Accounts) or none (unsigned links, believed; demo only)",
    )
    demo.add_argument("--accounts-port", type=int, default=8092)
    demo.add_argument(
        "--store",
        default=None,
        help="postgresql://... to run the demo on PostgreSQL (default: SQLite in --data-dir)",
    )
    demo.set_defaults(handler=commands.demo)

    check = subcommands.add_parser(
        "check-config", help="validate settings; print them redacted", parents=[config_option]
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also test the credentials against Zoho Billing and the Developer Console",
    )
    check.set_defaults(handler=commands.check_config)

    sign = subcommands.add_parser(
        "sign-link",
        help="print a fresh signed Manage Subscription link (new ts and nonce)",
        parents=[config_option],
    )
    sign.add_argument(
        "params", nargs="+", metavar="NAME=VALUE", help="landing parameters, e.g. zuid=600000001"
    )
    sign.add_argument(
        "--secret-file",
        type=Path,
        default=None,
        help="file holding the link secret (default: landing.link_secret from the settings)",
    )
    sign.add_argument(
        "--url",
        default=None,
        help="the Manage Subscription URL (default: landing.public_url + /manage)",
    )
    sign.set_defaults(handler=commands.sign_link)

    backup = subcommands.add_parser(
        "backup", help="copy the database safely while it runs", parents=[config_option]
    )
    backup.add_argument("destination", type=Path)
    backup.add_argument("--db", default=None, help=DB_HELP)
    backup.add_argument(
        "--verify", action="store_true", help="run an integrity check on the copy afterwards"
    )
    backup.set_defaults(handler=partial(store_commands.backup, environ=os.environ))

    mark_restored = subcommands.add_parser(
        "mark-restored",
        help="mark a restored store (pg_restore, a copied file) so the broker reconciles with "
        "billing before it sends anything",
        parents=[config_option],
    )
    mark_restored.add_argument("--db", default=None, help=DB_HELP)
    mark_restored.set_defaults(handler=partial(store_commands.mark_restored, environ=os.environ))

    check_db = subcommands.add_parser(
        "check-db",
        help="run SQLite's integrity check on the database (or a backup: --db FILE)",
        parents=[config_option],
    )
    check_db.add_argument("--db", default=None, help=DB_HELP)
    check_db.set_defaults(handler=partial(store_commands.check_db, environ=os.environ))

    db_option = argparse.ArgumentParser(add_help=False)
    db_option.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    deliveries.add_commands(subcommands, config_option, db_option, DB_HELP)
    rerun = subcommands.add_parser(
        "reconcile",
        help="find and repair what billing's webhooks missed (docs/reconciliation.md)",
        parents=[config_option],
    )
    rerun.add_argument(
        "--since", type=reconcile.since_day, default=None, help="read events from this day"
    )
    rerun.add_argument("--dry-run", action="store_true", help="show differences; change nothing")
    rerun.set_defaults(handler=reconcile.reconcile)
    make_hash = subcommands.add_parser(
        "ops-hash",
        help="hash the operator console's password (read from stdin) for ops.password_hash",
    )
    make_hash.set_defaults(handler=commands.ops_hash)
    events.add_commands(subcommands, config_option, db_option)
    parked.add_commands(subcommands, config_option, db_option)
    console_lists.add_commands(subcommands, config_option, db_option)
    store_commands.add_commands(subcommands, config_option)
    retention.add_commands(subcommands, config_option, db_option)
    return parser
