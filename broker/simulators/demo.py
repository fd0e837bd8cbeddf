"""``broker demo``: the broker beside simulated Zoho Billing and Developer Console, offline.

Everything runs in one process on loopback. Secrets are generated per run; the zapikey and the
landing link secret are kept in files under the data directory, never printed. Landing links are
signed like a Vertical Solution signs them (one fresh link per demo org is printed, and
``broker sign-link`` mints more); ``--verify none`` is the explicit opt-in to unsigned links, and
``--verify zoho`` signs in through a simulated Zoho Accounts instead. The billing simulator posts
its webhooks to the broker, like Zoho would, so the whole path can be followed: landing page ->
checkout -> webhook -> Add call.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from broker.config import (
    BillingSettings,
    DeliverySettings,
    LandingSettings,
    LandingVerification,
    OidcSettings,
    PlansSettings,
    PlatformSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from broker.core.link_signing import signed_url
from broker.simulators.accounts import AccountsSimulator, SimUser
from broker.simulators.billing import BillingSimulator
from broker.simulators.platform import PlatformSimulator
from broker.web.app import create_app

DEMO_APP_DOMAIN = "demoapp"
DEMO_ZUID = "600000001"
DEMO_ZGID = "700000001"
DEMO_ORGANIZATION_ID = "10234695"
DEMO_CLIENT_ID = "1000.DEMOCLIENT"
LINK_SECRET_FILE = "link-secret"  # noqa: S105 - a file name, not a secret
DEMO_OIDC_CLIENT_ID = "1000.DEMOSIGNIN"
DEMO_USERS = (
    SimUser(zuid=DEMO_ZUID, email="owner@demo.example", name="Dana Owner"),
    SimUser(zuid="600000002", email="member@demo.example", name="Sam Member"),
)


@dataclass(frozen=True)
class DemoUser:
    """A signed-in user of a demo org, as the Vertical Solution would describe them."""

    zuid: str
    zgid: str
    email: str
    first_name: str
    last_name: str
    company_name: str

    def landing_params(self) -> dict[str, str]:
        return {
            "zuid": self.zuid,
            "zgid": self.zgid,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "display_name": f"{self.first_name} {self.last_name}",
            "company_name": self.company_name,
        }


DEMO_ORGS = (
    DemoUser(DEMO_ZUID, DEMO_ZGID, "owner@demo.example", "Dana", "Owner", "Demo Org"),
    DemoUser("600000003", "700000002", "owner@second.example", "Sam", "Second", "Second Org"),
)


@dataclass(frozen=True)
class DemoSecrets:
    zapikey: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    refresh_token: str = field(default_factory=lambda: f"1000.{secrets.token_hex(16)}")
    link_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    oidc_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))


def demo_settings(
    host: str,
    port: int,
    platform_port: int,
    billing_port: int,
    data_dir: Path,
    demo_secrets: DemoSecrets,
    accounts_port: int | None = None,
    *,
    verify: LandingVerification = LandingVerification.SIGNED,
) -> Settings:
    """The demo's settings: signed links (or ``verify``); with ``accounts_port``, Sign in with
    Zoho against the accounts simulator."""
    billing_origin = f"http://{host}:{billing_port}"
    public_url = f"http://{host}:{port}"
    if accounts_port is not None:
        landing = LandingSettings(
            public_url=public_url,
            verify=LandingVerification.ZOHO,
            oidc=OidcSettings(
                client_id=DEMO_OIDC_CLIENT_ID,
                client_secret=demo_secrets.oidc_client_secret,
                accounts_url=f"http://{host}:{accounts_port}",
            ),
        )
    else:
        signed = verify is LandingVerification.SIGNED
        landing = LandingSettings(
            public_url=public_url,
            verify=verify,
            link_secret=demo_secrets.link_secret if signed else None,
        )
    return Settings(
        server=ServerSettings(host=host, port=port),
        store=StoreSettings(path=data_dir / "broker.db"),
        platform=PlatformSettings(
            app_domain=DEMO_APP_DOMAIN,
            zapikey=demo_secrets.zapikey,
            base_url=f"http://{host}:{platform_port}",
        ),
        billing=BillingSettings(
            base_url=f"{billing_origin}/billing/v1",
            accounts_url=billing_origin,
            organization_id=DEMO_ORGANIZATION_ID,
            client_id=DEMO_CLIENT_ID,
            client_secret=demo_secrets.client_secret,
            refresh_token=demo_secrets.refresh_token,
        ),
        plans=PlansSettings(
            storage_addon_monthly=f"{DEMO_APP_DOMAIN}_storage",
            storage_addon_yearly=f"{DEMO_APP_DOMAIN}_storage_Y",
        ),
        delivery=DeliverySettings(initial_backoff_seconds=1.0, max_backoff_seconds=30.0),
        landing=landing,
    )


def billing_simulator(host: str, port: int, demo_secrets: DemoSecrets) -> BillingSimulator:
    return BillingSimulator(
        app_domain=DEMO_APP_DOMAIN,
        organization_id=DEMO_ORGANIZATION_ID,
        client_id=DEMO_CLIENT_ID,
        client_secret=demo_secrets.client_secret,
        refresh_token=demo_secrets.refresh_token,
        webhook_url=f"http://{host}:{port}/webhooks/billing",
        webhook_zapikey=demo_secrets.zapikey,
    )


def sample_event(subscription_id: str) -> dict[str, Any]:
    """A subscription_created webhook in Zoho's default payload shape."""
    return {
        "event_id": f"demo-{secrets.token_hex(4)}",
        "event_type": "subscription_created",
        "event_time": "2026-11-21",
        "created_time": "2026-11-21T10:00:00+0000",
        "data": {
            "subscription": {
                "subscription_id": subscription_id,
                "status": "live",
                "interval": 1,
                "interval_unit": "months",
                "updated_time": "2026-11-21T10:00:00+0000",
                "amount": 120.0,
                "currency_code": "USD",
                "plan": {
                    "plan_code": f"{DEMO_APP_DOMAIN}_1001",
                    "plan_id": "1001",
                    "name": "Professional",
                    "quantity": 5,
                },
                "addons": [{"addon_code": f"{DEMO_APP_DOMAIN}_storage", "quantity": 2}],
                "customer_id": "900000001",
                "customer": {
                    "customer_id": "900000001",
                    "display_name": "Demo Org",
                    "email": "owner@demo.example",
                    "custom_fields": [
                        {"label": "zuid", "api_name": "cf_zuid", "value": DEMO_ZUID},
                        {"label": "zgid", "api_name": "cf_zgid", "value": DEMO_ZGID},
                    ],
                },
            }
        },
    }


def accounts_simulator(host: str, port: int, accounts_port: int, secret: str) -> AccountsSimulator:
    """Zoho Accounts for Sign in with Zoho, with the demo org's two users."""
    accounts = AccountsSimulator(DEMO_OIDC_CLIENT_ID, secret, list(DEMO_USERS))
    accounts.origin = f"http://{host}:{accounts_port}"
    accounts.redirect_uris.add(f"http://{host}:{port}/manage/oidc/callback")
    return accounts


async def run_demo(
    *,
    host: str,
    port: int,
    platform_port: int,
    billing_port: int,
    data_dir: Path,
    verify: LandingVerification = LandingVerification.SIGNED,
    accounts_port: int | None = None,
) -> None:
    """Serve everything; ``accounts_port`` turns on Sign in with Zoho (``--verify zoho``)."""
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
    )
    apps = [
        (PlatformSimulator(demo_secrets.zapikey).app(), platform_port),
        (billing_simulator(host, port, demo_secrets).app(), billing_port),
    ]
    if accounts_port is not None:
        secret = demo_secrets.oidc_client_secret
        apps.append((accounts_simulator(host, port, accounts_port, secret).app(), accounts_port))
    runners = []
    try:
        for app, app_port in [*apps, (create_app(settings), port)]:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, app_port).start()
        mode = settings.landing.verification or LandingVerification.NONE
        print(
            instructions(
                host, port, platform_port, billing_port, data_dir, demo_secrets, verify=mode
            ),
            flush=True,
        )
        if accounts_port is not None:
            _print_sign_in(host, port, accounts_port)
        await _until_stopped()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


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
    verify: LandingVerification = LandingVerification.SIGNED,
) -> str:
    """What the demo prints; writes the secret files it refers to."""
    header_file = data_dir / "zapikey.header"
    header_file.write_text(f"zapikey: {demo_secrets.zapikey}\n")
    header_file.chmod(0o600)
    subscription_id = "100000000000000001"
    event_file = data_dir / "sample-event.json"
    event_file.write_text(json.dumps(sample_event(subscription_id), indent=2))
    base = f"http://{host}:{port}"
    links = landing_links(base, data_dir, demo_secrets, verify)
    listed = "\n".join(
        f"  {user.company_name} ({user.first_name} {user.last_name}):\n  {link}\n"
        for user, link in zip(DEMO_ORGS, links, strict=True)
    )
    if verify is LandingVerification.SIGNED:
        how = (
            "Each link opens the page once, within a few minutes (signed, with a single-use"
            f" nonce; the secret is in {data_dir / LINK_SECRET_FILE}). Mint another with:\n\n"
            f"  {sign_link_command(base, data_dir, DEMO_ORGS[0])}\n"
        )
    elif verify is LandingVerification.ZOHO:
        how = "Sign in with Zoho is on: these links send you to the simulated Zoho Accounts.\n"
    else:
        how = 'verify = "none": these links are unsigned and the page believes them (demo only).\n'
    return f"""
Subscription broker demo is running (Ctrl-C to stop)
  broker:                      {base}   (database: {data_dir / "broker.db"})
  simulated Zoho Billing:      http://{host}:{billing_port}   (state: /_sim/state)
  simulated Developer Console: http://{host}:{platform_port}   (calls: /_sim/calls)

1. Open the Manage Subscription page as a demo org's owner, choose a plan and pay on the
   simulated checkout; the page then shows the subscription and the console gets the Add:

{listed}
{how}
2. Or post a sample 'subscription_created' webhook yourself (the zapikey is in {header_file}):

  curl -sS -H @{header_file} -H 'Content-Type: application/json' \\
       --data @{event_file} {base}/webhooks/billing

See what the Developer Console received:

  curl -sS http://{host}:{platform_port}/_sim/calls
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
