"""``broker unmapped list``, ``broker audit list`` and ``broker money list``: the console's
lists that are only a list, with its filters (``listing``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from broker.cli import listing
from broker.store import ops_reads
from broker.store.money_events import money_events_page


def add_commands(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: argparse.ArgumentParser,
    db_option: argparse.ArgumentParser,
) -> None:
    """Register the three groups (``cli/__init__.py`` calls this)."""
    for name, lister, what in (
        ("unmapped", list_unmapped, "subscriptions of the app's product whose plan does not map"),
        ("audit", list_audit, "the audit log (page and console actions)"),
        ("money", list_money, "refunds, chargebacks, voided invoices and credit notes"),
    ):
        actions = listing.add_group(subcommands, name, what, config_option)
        listing.add_list(actions, what, lister, [db_option, config_option])


def list_unmapped(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return listing.print_page(
        args,
        environ,
        ops_reads.unmapped,
        ("updated_at",),
        ["updated_at", "subscription_id", "status", "customer_id", "plan_code"],
    )


def list_audit(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return listing.print_page(
        args,
        environ,
        ops_reads.audit_log,
        ("at",),
        ["at", "zuid", "zgid", "action", "subscription_id", "result", "detail"],
    )


def list_money(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return listing.print_page(
        args,
        environ,
        money_events_page,
        ("received_at",),
        ["received_at", "event_type", "subscription_id", "amount", "of_total", "verdict", "reason"],
    )
