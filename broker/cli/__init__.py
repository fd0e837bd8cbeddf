"""The ``broker`` command: the one place that reads the environment and configures logging.

broker serve            run the service
broker demo             run it offline beside a simulated Developer Console
broker check-config     validate settings and print them with secrets hidden
broker sign-link        print a fresh signed Manage Subscription link (tests, the demo)
broker deliveries ...   list deliveries, show one, retry dead letters
broker backup DEST      consistent online copy of the database

The database commands (``deliveries``, ``backup``) live in ``operator``; this module
parses their arguments and hands them the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, SecretStr, ValidationError

from broker.cli import operator
from broker.config import LandingVerification, Settings, load_settings
from broker.core.link_signing import NONCE_PARAM, SIGNATURE_PARAM, TIMESTAMP_PARAM, signed_url
from broker.delivery.runtime import loop_name, new_event_loop
from broker.logs import configure_logging
from broker.manage.identity import verification_warning
from broker.secret_env import SECRETS_FD_VARIABLE, read_secrets_pipe
from broker.store import outbox
from broker.web.app import create_app

log = structlog.get_logger(__name__)

ENV_PREFIX = "BROKER_"
EXIT_CONFIG = 2


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
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the service", parents=[config_option])
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="run offline beside simulated Zoho services", parents=[config_option]
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--platform-port", type=int, default=8090)
    demo.add_argument("--billing-port", type=int, default=8091)
    demo.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    demo.add_argument(
        "--verify",
        choices=[m.value for m in LandingVerification],
        default=LandingVerification.SIGNED.value,
        help="how landing visits are verified: signed links (default), zoho (Sign in with Zoho "
        "against a simulated Zoho Accounts) or none (unsigned links, believed; demo only)",
    )
    demo.add_argument("--accounts-port", type=int, default=8092)
    demo.set_defaults(handler=_demo)

    deliver = commands.add_parser(
        "deliver",
        help="run only the delivery worker (serve starts it as a child process)",
        parents=[config_option],
    )
    deliver.set_defaults(handler=_deliver)

    check = commands.add_parser(
        "check-config", help="validate settings; print them redacted", parents=[config_option]
    )
    check.set_defaults(handler=_check_config)

    sign = commands.add_parser(
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
    sign.set_defaults(handler=_sign_link)

    backup = commands.add_parser(
        "backup", help="copy the database safely while it runs", parents=[config_option]
    )
    backup.add_argument("destination", type=Path)
    backup.add_argument("--db", type=Path, default=None, help="database file (default: settings)")
    backup.set_defaults(handler=partial(operator.backup, environ=os.environ))

    deliveries = commands.add_parser(
        "deliveries", help="inspect and retry platform deliveries", parents=[config_option]
    )
    deliveries.add_argument(
        "--db", type=Path, default=None, help="database file (default: settings)"
    )
    db_option = argparse.ArgumentParser(add_help=False)
    db_option.add_argument(
        "--db", type=Path, default=argparse.SUPPRESS, help="database file (default: settings)"
    )
    actions = deliveries.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", help="list deliveries, newest first", parents=[db_option, config_option]
    )
    listing.add_argument("--state", choices=outbox.DELIVERY_STATES)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=partial(operator.deliveries_list, environ=os.environ))
    show = actions.add_parser(
        "show", help="one delivery with every attempt", parents=[db_option, config_option]
    )
    show.add_argument("id", type=int)
    show.set_defaults(handler=partial(operator.deliveries_show, environ=os.environ))
    retry = actions.add_parser(
        "retry", help="send dead letters again", parents=[db_option, config_option]
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all-dead", action="store_true")
    retry.set_defaults(handler=partial(operator.deliveries_retry, environ=os.environ))
    return parser


def _settings(args: argparse.Namespace) -> Settings | None:
    """Load settings, or print what is wrong (naming the key) and return None.

    The environment is read into a copy: nothing is written back into ``os.environ``, so no
    secret read from a ``_FILE`` reaches a child process's environment.
    """
    environ = dict(os.environ)
    config_file = args.config or (
        Path(environ["BROKER_CONFIG"]) if environ.get("BROKER_CONFIG") else None
    )
    if environ.get("PORT") and not environ.get("BROKER_SERVER__PORT"):
        environ["BROKER_SERVER__PORT"] = environ["PORT"]  # Procfile hosts assign PORT
    if environ.get(SECRETS_FD_VARIABLE):
        # Started by `broker serve`: the secrets it holds came through a pipe, not the env.
        try:
            environ.update(read_secrets_pipe(int(environ.pop(SECRETS_FD_VARIABLE))))
        except (OSError, ValueError) as exc:
            print(f"configuration error: cannot read the secrets pipe: {exc}", file=sys.stderr)
            return None
    unknown = _unknown_env_sections(environ)
    if unknown:
        print("configuration error:", file=sys.stderr)
        for name in unknown:
            print(
                f"  {name}: unknown settings section; the sections are "
                f"{', '.join(sorted(Settings.model_fields))}",
                file=sys.stderr,
            )
        return None
    try:
        return load_settings(config_file, environ)
    except OSError as exc:  # a missing config file, an unreadable _FILE secret
        print(f"configuration error: {exc}", file=sys.stderr)
    except tomllib.TOMLDecodeError as exc:  # a ValueError too, so it must come first
        print(f"configuration error: {config_file} is not valid TOML: {exc}", file=sys.stderr)
    except (ValidationError, ValueError) as exc:
        print("configuration error:", file=sys.stderr)
        for line in describe_settings_error(exc):
            print(f"  {line}", file=sys.stderr)
    return None


def _unknown_env_sections(environ: Mapping[str, str]) -> list[str]:
    """pydantic-settings ignores ``BROKER_SERVR__PORT``; a misspelt section must not pass."""
    unknown = []
    for name in environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and "__" in upper:
            section = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if section not in Settings.model_fields:
                unknown.append(name)
    return sorted(unknown)


def describe_settings_error(exc: Exception) -> list[str]:
    if not isinstance(exc, ValidationError):
        return [str(exc)]
    lines = []
    for error in _expand_missing_sections(exc.errors(include_url=False, include_input=False)):
        location = [str(part) for part in error["loc"]]
        key = ".".join(location) or "(settings)"
        env = ENV_PREFIX + "__".join(part.upper() for part in location)
        if error["type"] == "extra_forbidden":
            lines.append(
                f"{key}: unknown setting; check its spelling in config/broker.example.toml"
            )
            continue
        hint = (
            f" (set {env} or [{location[0]}] {'.'.join(location[1:])} in the config file)"
            if len(location) > 1
            else ""
        )
        lines.append(f"{key}: {error['msg']}{hint}")
    return lines


def _expand_missing_sections(errors: list[Any]) -> list[Any]:
    """A whole missing section is reported as each of its required keys, which is actionable."""
    expanded = []
    for error in errors:
        section = Settings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
        model = section.annotation if section else None
        if (
            error["type"] == "missing"
            and len(error["loc"]) == 1
            and isinstance(model, type)
            and issubclass(model, BaseModel)
        ):
            for name, field in model.model_fields.items():
                if field.is_required():
                    expanded.append({**error, "loc": (error["loc"][0], name)})
        else:
            expanded.append(error)
    return expanded


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
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
    delivery_command = None
    if settings.delivery.separate_process:
        delivery_command = [sys.executable, "-m", "broker", "deliver"]
        if args.config or os.environ.get("BROKER_CONFIG"):
            delivery_command += ["--config", str(args.config or os.environ["BROKER_CONFIG"])]
    web.run_app(
        create_app(settings, delivery_command=delivery_command),
        loop=loop,
        host=settings.server.host,
        port=settings.server.port,
        access_log=None,
        print=None,
        shutdown_timeout=settings.platform.request_timeout_seconds + 5,
    )
    return 0


def _deliver(args: argparse.Namespace) -> int:
    from broker.delivery.process import run_delivery_child

    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    configure_logging(level=settings.log.level, fmt=settings.log.format, secrets=settings.secrets())
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run_delivery_child(settings))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from broker.simulators.demo import (
        run_demo,  # the demo pulls in the simulators; serve never needs them
    )

    configure_logging(level="INFO", fmt="console" if sys.stdout.isatty() else "json")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(
                run_demo(
                    host=args.host,
                    port=args.port,
                    platform_port=args.platform_port,
                    billing_port=args.billing_port,
                    data_dir=args.data_dir,
                    verify=LandingVerification(args.verify),
                    accounts_port=args.accounts_port if args.verify == "zoho" else None,
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


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    summary = redacted(settings.model_dump())
    summary["platform"]["resolved_base_url"] = settings.platform.resolved_base_url
    if settings.billing is not None:
        summary["billing"]["resolved_base_url"] = settings.billing.resolved_base_url
        summary["billing"]["resolved_accounts_url"] = settings.billing.resolved_accounts_url
    print(json.dumps(summary, indent=2, default=str))
    print("configuration OK", file=sys.stderr)
    warning = verification_warning(settings)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _sign_link(args: argparse.Namespace) -> int:
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
        settings = _settings(args)
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


def redacted(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value
