"""What ``serve``, ``demo``, ``check-config``, ``sign-link`` and ``ops-hash`` do: wire the
service from settings and run it, or inspect the settings, or make one.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time

import structlog
from aiohttp import web

from broker.app import create_app
from broker.cli import check, go_live
from broker.cli.settings import EXIT_CONFIG, load_from_args
from broker.config import LandingVerification
from broker.core.link_signing import NONCE_PARAM, SIGNATURE_PARAM, TIMESTAMP_PARAM, signed_url
from broker.core.operator_password import hash_password
from broker.delivery.reconcile import schedule_status
from broker.delivery.runtime import loop_name, new_event_loop
from broker.logs import configure_logging
from broker.redaction import Redactor, redacted

log = structlog.get_logger(__name__)


def serve(args: argparse.Namespace) -> int:
    settings = load_from_args(args)
    if settings is None:
        return EXIT_CONFIG
    configure_logging(level=settings.log.level, fmt=settings.log.format, secrets=settings.secrets())
    loop = new_event_loop()
    log.info(
        "broker.starting",
        event_loop=loop_name(loop),
        host=settings.server.host,
        port=settings.server.port,
    )
    web.run_app(
        create_app(settings),
        loop=loop,
        host=settings.server.host,
        port=settings.server.port,
        access_log=None,
        print=None,
        shutdown_timeout=settings.platform.request_timeout_seconds + 5,
    )
    return 0


def demo(args: argparse.Namespace) -> int:
    from broker.simulators.demo import (
        run_demo,  # the demo pulls in the simulators; serve never needs them
    )
    from broker.simulators.demo_world import reset_data_dir

    if args.store is not None and not args.store.startswith(("postgresql://", "postgres://")):
        print("demo: --store takes a postgresql:// URL (SQLite is the default)", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(level="INFO", fmt="console" if sys.stdout.isatty() else "json")
    if args.reset:
        print(reset_data_dir(args.data_dir), flush=True)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(
                run_demo(
                    create_app,
                    host=args.host,
                    port=args.port,
                    platform_port=args.platform_port,
                    billing_port=args.billing_port,
                    data_dir=args.data_dir,
                    verify=LandingVerification(args.verify),
                    accounts_port=args.accounts_port if args.verify == "zoho" else None,
                    store_url=args.store,
                )
            )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"demo could not start: {exc.strerror or exc} "
            "(is another demo running? try --port, --platform-port, --billing-port)",
            file=sys.stderr,
        )
        return 1
    return 0


def check_config(args: argparse.Namespace) -> int:
    settings = load_from_args(args)
    if settings is None:
        return EXIT_CONFIG
    summary = redacted(settings.model_dump(), Redactor(settings.secrets()))
    summary["platform"]["resolved_base_url"] = settings.platform.resolved_base_url
    if settings.billing is not None:
        summary["billing"]["resolved_base_url"] = settings.billing.resolved_base_url
        summary["billing"]["resolved_accounts_url"] = settings.billing.resolved_accounts_url
    summary["reconcile"]["status"] = schedule_status(settings)
    print(json.dumps(summary, indent=2, default=str))
    print("configuration OK", file=sys.stderr)
    for choice in check.access_choices(settings):
        print(choice, file=sys.stderr)
    for warning in check.warnings(settings, os.environ):
        print(f"warning: {warning}", file=sys.stderr)
    if not args.online:
        return 0
    # The clients' info lines would mix with the results; warnings still show, redacted.
    configure_logging(level="WARNING", secrets=settings.secrets(), stream=sys.stderr)
    results = asyncio.run(check.online_checks(settings))
    for result in results:
        print(result.line(), file=sys.stderr)
    # The guide's go-live checklist, each line answered where the broker can see it.
    print(f"go-live checklist ({go_live.GUIDE}):", file=sys.stderr)
    for line in asyncio.run(go_live.go_live(settings, os.environ, results)):
        print(line.text(), file=sys.stderr)
    return 1 if any(r.outcome is check.Outcome.FAILED for r in results) else 0


def sign_link(args: argparse.Namespace) -> int:
    """Mint a link the way a vendor's Deluge would; the secret is read, never printed."""
    params: dict[str, str] = {}
    for item in args.params:
        name, equals, value = item.partition("=")
        if not equals or not name:
            print(f"sign-link: {item!r} is not NAME=VALUE", file=sys.stderr)
            return EXIT_CONFIG
        if name in (SIGNATURE_PARAM, TIMESTAMP_PARAM, NONCE_PARAM) or name in params:
            print(f"sign-link: {name} is given twice or is added by sign-link", file=sys.stderr)
            return EXIT_CONFIG
        params[name] = value
    url = args.url
    if args.secret_file is not None:
        try:
            secret = args.secret_file.read_text().strip()
        except OSError as exc:
            print(f"sign-link: cannot read {args.secret_file} ({exc.strerror})", file=sys.stderr)
            return EXIT_CONFIG
    else:
        settings = load_from_args(args)
        if settings is None:
            return EXIT_CONFIG
        if settings.landing.link_secret is None:
            print(
                "sign-link: no link secret: set BROKER_LANDING__LINK_SECRET or pass --secret-file",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        secret = settings.landing.link_secret.get_secret_value()
        if url is None and settings.landing.public_url:
            url = f"{settings.landing.public_url}/manage"
    if len(secret) < 16:
        print("sign-link: the link secret must be at least 16 characters", file=sys.stderr)
        return EXIT_CONFIG
    print(signed_url(url or "http://127.0.0.1:8080/manage", params, secret=secret, now=time.time()))
    return 0


def ops_hash(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Operator password: ")
        if getpass.getpass("Again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("choose a password of at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0
