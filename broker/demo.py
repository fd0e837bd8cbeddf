"""``broker demo``: the broker beside simulated Zoho Billing and Developer Console, offline.

Everything runs in one process on loopback. Secrets are generated per run; the zapikey is kept in
a header file, never printed. The billing simulator posts its webhooks to the broker, like Zoho
would, so the whole path can be followed: landing page -> checkout -> webhook -> Add call.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .app import create_app
from .config import (
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
from .simulators.accounts import AccountsSimulator, SimUser
from .simulators.billing import BillingSimulator
from .simulators.platform import PlatformSimulator

DEMO_APP_DOMAIN = "demoapp"
DEMO_ZUID = "600000001"
DEMO_ZGID = "700000001"
DEMO_ORGANIZATION_ID = "10234695"
DEMO_CLIENT_ID = "1000.DEMOCLIENT"
DEMO_OIDC_CLIENT_ID = "1000.DEMOSIGNIN"
DEMO_USERS = (
    SimUser(zuid=DEMO_ZUID, email="owner@demo.example", name="Dana Owner"),
    SimUser(zuid="600000002", email="member@demo.example", name="Sam Member"),
)


@dataclass(frozen=True)
class DemoSecrets:
    zapikey: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    refresh_token: str = field(default_factory=lambda: f"1000.{secrets.token_hex(16)}")
    oidc_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))


def demo_settings(
    host: str,
    port: int,
    platform_port: int,
    billing_port: int,
    data_dir: Path,
    demo_secrets: DemoSecrets,
    accounts_port: int | None = None,
) -> Settings:
    """The demo's settings; with ``accounts_port``, Sign in with Zoho against the simulator."""
    billing_origin = f"http://{host}:{billing_port}"
    landing = LandingSettings(public_url=f"http://{host}:{port}")
    if accounts_port is not None:
        landing = LandingSettings(
            public_url=f"http://{host}:{port}",
            verify=LandingVerification.ZOHO,
            oidc=OidcSettings(
                client_id=DEMO_OIDC_CLIENT_ID,
                client_secret=demo_secrets.oidc_client_secret,
                accounts_url=f"http://{host}:{accounts_port}",
            ),
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
    accounts_port: int | None = None,
) -> None:
    """Serve everything; ``accounts_port`` turns on Sign in with Zoho (``--verify zoho``)."""
    demo_secrets = DemoSecrets()
    settings = demo_settings(
        host, port, platform_port, billing_port, data_dir, demo_secrets, accounts_port
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
        _print_instructions(host, port, platform_port, billing_port, data_dir, demo_secrets.zapikey)
        if accounts_port is not None:
            _print_sign_in(host, port, accounts_port)
        await _until_stopped()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def landing_url(base: str, **overrides: str) -> str:
    params = {
        "zuid": DEMO_ZUID,
        "zgid": DEMO_ZGID,
        "email": "owner@demo.example",
        "first_name": "Dana",
        "last_name": "Owner",
        "display_name": "Dana Owner",
        "company_name": "Demo Org",
        **overrides,
    }
    return f"{base}/manage?{urlencode(params)}"


def _print_instructions(
    host: str, port: int, platform_port: int, billing_port: int, data_dir: Path, zapikey: str
) -> None:
    header_file = data_dir / "zapikey.header"
    header_file.write_text(f"zapikey: {zapikey}\n")
    header_file.chmod(0o600)
    subscription_id = "100000000000000001"
    event_file = data_dir / "sample-event.json"
    event_file.write_text(json.dumps(sample_event(subscription_id), indent=2))
    base = f"http://{host}:{port}"
    print(
        f"""
Subscription broker demo is running (Ctrl-C to stop)
  broker:                      {base}   (database: {data_dir / "broker.db"})
  simulated Zoho Billing:      http://{host}:{billing_port}   (state: /_sim/state)
  simulated Developer Console: http://{host}:{platform_port}   (calls: /_sim/calls)

1. Open the Manage Subscription page as the demo org's owner, choose a plan and pay on the
   simulated checkout; the page then shows the subscription and the console gets the Add:

  {landing_url(base)}

2. Or post a sample 'subscription_created' webhook yourself (the zapikey is in {header_file}):

  curl -sS -H @{header_file} -H 'Content-Type: application/json' \\
       --data @{event_file} {base}/webhooks/billing

See what the Developer Console received:

  curl -sS http://{host}:{platform_port}/_sim/calls
""",
        flush=True,
    )


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
