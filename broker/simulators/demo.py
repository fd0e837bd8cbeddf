"""``broker demo``: the broker beside simulated Zoho Billing and Developer Console, offline.

Everything runs in one process on loopback. Secrets are generated per run; the zapikey and the
landing link secret are kept in files under the data directory, never printed. Landing links are
signed like a Vertical Solution signs them (one fresh link per demo org is printed, and
``broker sign-link`` mints more); ``--verify none`` is the explicit opt-in to unsigned links, and
``--verify zoho`` signs in through a simulated Zoho Accounts instead. The billing simulator posts
its webhooks to the broker, like Zoho would, so the whole path can be followed: landing page ->
checkout -> webhook -> Add call. What the simulated billing starts with is in ``demo_world``.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from broker.config import LandingVerification, Settings
from broker.core.link_signing import signed_url
from broker.simulators.demo_world import (
    DEMO_ORGS,
    DEMO_USERS,
    DEMO_ZGID,
    LINK_SECRET_FILE,
    DemoSecrets,
    DemoUser,
    accounts_simulator,
    billing_simulator,
    demo_settings,
    seed_story,
)
from broker.simulators.platform import PlatformSimulator

__all__ = ["DemoSecrets", "accounts_simulator", "demo_settings", "instructions", "run_demo"]


async def run_demo(
    make_broker: Callable[[Settings], web.Application],
    *,
    host: str,
    port: int,
    platform_port: int,
    billing_port: int,
    data_dir: Path,
    verify: LandingVerification = LandingVerification.SIGNED,
    accounts_port: int | None = None,
    store_url: str | None = None,
) -> None:
    """Serve everything: the simulators and ``make_broker``'s app (the command passes
    ``create_app``, so the simulators never import what composes the broker);
    ``accounts_port`` turns on Sign in with Zoho (``--verify zoho``);
    ``store_url`` (``--store postgresql://...``) keeps the broker's state in PostgreSQL."""
    demo_secrets = DemoSecrets()
    settings = demo_settings(
        host,
        port,
        platform_port,
        billing_port,
        data_dir,
        demo_secrets,
        accounts_port,
        verify=verify,
        store_url=store_url,
    )
    earlier_run = store_url is None and (data_dir / "broker.db").exists()
    billing = billing_simulator(host, port, demo_secrets)
    apps = [
        (PlatformSimulator(demo_secrets.zapikey).app(), platform_port),
        (billing.app(), billing_port),
    ]
    if accounts_port is not None:
        secret = demo_secrets.oidc_client_secret
        apps.append((accounts_simulator(host, port, accounts_port, secret).app(), accounts_port))
    runners = []
    try:
        for app, app_port in [*apps, (make_broker(settings), port)]:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, app_port).start()
        mode = settings.landing.verification or LandingVerification.NONE
        ports = (port, platform_port, billing_port)
        sample = seed_story(billing)
        text = instructions(
            host,
            *ports,
            data_dir,
            demo_secrets,
            sample=sample,
            verify=mode,
            database=_shown_store(store_url),
        )
        print(text + notes(host, billing_port, data_dir, earlier_run=earlier_run), flush=True)
        if accounts_port is not None:
            _print_sign_in(host, port, accounts_port)
        await _until_stopped()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _shown_store(store_url: str | None) -> str | None:
    if store_url is None:
        return None
    from broker.store.engine.pg_admin import shown_url  # psycopg loads only for PostgreSQL

    return shown_url(store_url)


def landing_links(
    base: str, data_dir: Path, demo_secrets: DemoSecrets, verify: LandingVerification
) -> list[str]:
    """One fresh Manage Subscription link per demo org: signed (the secret goes to a file, never
    to the screen), or plain with ``--verify none``."""
    if verify is not LandingVerification.SIGNED:
        return [f"{base}/manage?{urlencode(user.landing_params())}" for user in DEMO_ORGS]
    secret_file = data_dir / LINK_SECRET_FILE
    secret_file.write_text(demo_secrets.link_secret + "\n")
    secret_file.chmod(0o600)
    now = time.time()
    return [
        signed_url(
            f"{base}/manage", user.landing_params(), secret=demo_secrets.link_secret, now=now
        )
        for user in DEMO_ORGS
    ]


def sign_link_command(base: str, data_dir: Path, user: DemoUser) -> str:
    """The one command that mints another signed link for ``user``."""
    pairs = [f"{name}={value}" for name, value in user.landing_params().items()]
    return shlex.join(
        [
            "broker",
            "sign-link",
            "--secret-file",
            str(data_dir / LINK_SECRET_FILE),
            "--url",
            f"{base}/manage",
            *pairs,
        ]
    )


def instructions(
    host: str,
    port: int,
    platform_port: int,
    billing_port: int,
    data_dir: Path,
    demo_secrets: DemoSecrets,
    *,
    sample: bytes,
    verify: LandingVerification = LandingVerification.SIGNED,
    database: str | None = None,
) -> str:
    """What the demo prints (``database``: where the broker's state is, if not the file);
    writes the secret files it refers to and ``sample``, the webhook body billing could not
    deliver for the second org (``demo_world.seed_story``)."""
    header_file = data_dir / "zapikey.header"
    header_file.write_text(f"zapikey: {demo_secrets.zapikey}\n")
    header_file.chmod(0o600)
    event_file = data_dir / "sample-event.json"
    event_file.write_bytes(sample)
    base = f"http://{host}:{port}"
    links = landing_links(base, data_dir, demo_secrets, verify)
    first, second = DEMO_ORGS
    if verify is LandingVerification.SIGNED:
        how = (
            "Each link opens the page once, within a few minutes (signed, with a single-use"
            f" nonce; the secret is in {data_dir / LINK_SECRET_FILE}). Mint another with:\n\n"
            f"  {sign_link_command(base, data_dir, first)}\n"
        )
    elif verify is LandingVerification.ZOHO:
        how = "Sign in with Zoho is on: these links send you to the simulated Zoho Accounts.\n"
    else:
        how = 'verify = "none": these links are unsigned and the page believes them (demo only).\n'
    return f"""
Subscription broker demo is running (Ctrl-C to stop)
  broker:                      {base}   (database: {database or data_dir / "broker.db"})
  simulated Zoho Billing:      http://{host}:{billing_port}   (state: /_sim/state)
  simulated Developer Console: http://{host}:{platform_port}   (calls: /_sim/calls)

1. {first.company_name} has no subscription yet. Open its Manage Subscription page as its owner,
   choose a plan and pay on the simulated checkout; the page then shows the subscription and the
   console gets the Add:

  {link_line(first, links[0])}

{how}
2. {second.company_name} already bought a plan in the simulated billing, but billing's webhooks
   for it were dropped, so no webhook told the broker. Open its page anyway: before offering a
   plan the page asks billing which subscriptions the org has, shows the one it pays for, and
   the console gets its one Add:

  {link_line(second, links[1])}

   Or first deliver the webhook billing could not (the zapikey is in {header_file}):

  curl -sS -H @{header_file} -H 'Content-Type: application/json' \\
       --data @{event_file} {base}/webhooks/billing

See what the Developer Console received:

  curl -sS http://{host}:{platform_port}/_sim/calls
"""


def link_line(user: DemoUser, link: str) -> str:
    return f"{user.company_name} ({user.first_name} {user.last_name}):\n  {link}"


def notes(host: str, billing_port: int, data_dir: Path, *, earlier_run: bool) -> str:
    """The failure switches, and what survives a restart."""
    sim = f"http://{host}:{billing_port}/_sim"
    post = "curl -sS -X POST -H 'Content-Type: application/json'"
    earlier = (
        f"\n{data_dir / 'broker.db'} is from an earlier run: the broker may show subscriptions"
        " this billing never had."
        if earlier_run
        else ""
    )
    return f"""
Failure switches (the simulated billing's controls):
  billing down:       {post} -d '{{"down": true}}' {sim}/faults   (false to bring it back)
  expired checkout:   {post} {sim}/expire_hosted_pages
  dropped webhooks:   {post} -d '{{"drop_all": true}}' {sim}/webhooks
                      (false to deliver again; the events stay listed at /billing/v1/events)
  request limit:      {post} -d '{{"per_minute": 5}}' {sim}/faults   (0 lifts it)
  move the calendar:  {post} -d '{{"date": "2031-01-01"}}' {sim}/today   (renewals fall due)

Note: {data_dir}/ persists between runs (the broker's database, secrets, the sample webhook);
the simulated billing and console start empty every time.{earlier}
For a clean start: broker demo --reset
"""


def _print_sign_in(host: str, port: int, accounts_port: int) -> None:
    names = ", ".join(f"{u.name} ({u.email})" for u in DEMO_USERS)
    print(
        f"""Sign in with Zoho is on (--verify zoho). Links to the page send you to the simulated
Zoho Accounts at http://{host}:{accounts_port}: press "Accept as ..." for one of {names}.
The page then opens as that user (the zuid and email come from the ID token; the org comes
from the link's zgid, bound on the user's first visit). Without a link, open:

  http://{host}:{port}/manage?zgid={DEMO_ZGID}
""",
        flush=True,
    )


async def _until_stopped() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
