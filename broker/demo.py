"""``broker demo``: the broker and a simulated Developer Console, offline, in one process.

It generates a throw-away zapikey, keeps it in a header file (so it is never printed), writes a
sample webhook and prints the ``curl`` that posts it. The simulator then logs the Add call.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from .app import create_app
from .config import (
    DeliverySettings,
    PlansSettings,
    PlatformSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from .simulators.platform import PlatformSimulator

DEMO_APP_DOMAIN = "demoapp"
DEMO_ZUID = "600000001"
DEMO_ZGID = "700000001"


def demo_settings(
    host: str, port: int, platform_port: int, data_dir: Path, zapikey: str
) -> Settings:
    return Settings(
        server=ServerSettings(host=host, port=port),
        store=StoreSettings(path=data_dir / "broker.db"),
        platform=PlatformSettings(
            app_domain=DEMO_APP_DOMAIN,
            zapikey=zapikey,
            base_url=f"http://{host}:{platform_port}",
        ),
        plans=PlansSettings(
            storage_addon_monthly=f"{DEMO_APP_DOMAIN}_storage",
            storage_addon_yearly=f"{DEMO_APP_DOMAIN}_storage_Y",
        ),
        delivery=DeliverySettings(initial_backoff_seconds=1.0, max_backoff_seconds=30.0),
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


async def run_demo(*, host: str, port: int, platform_port: int, data_dir: Path) -> None:
    zapikey = secrets.token_urlsafe(24)
    simulator = PlatformSimulator(zapikey)
    runners = []
    try:
        for app, app_port in (
            (simulator.app(), platform_port),
            (create_app(demo_settings(host, port, platform_port, data_dir, zapikey)), port),
        ):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, app_port).start()
        _print_instructions(host, port, platform_port, data_dir, zapikey)
        await _until_stopped()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _print_instructions(
    host: str, port: int, platform_port: int, data_dir: Path, zapikey: str
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
  simulated Developer Console: http://{host}:{platform_port}   (its calls: /_sim/calls)

Post a sample 'subscription_created' webhook (the zapikey is in {header_file}):

  curl -sS -H @{header_file} -H 'Content-Type: application/json' \\
       --data @{event_file} {base}/webhooks/billing

The simulator then logs the Add (POST) call. See what it received:

  curl -sS http://{host}:{platform_port}/_sim/calls

Open the Manage Subscription page as the demo org's user:

  {base}/manage?zuid={DEMO_ZUID}&zgid={DEMO_ZGID}&email=owner@demo.example&display_name=Demo+Owner&subscription_id={subscription_id}
""",
        flush=True,
    )


async def _until_stopped() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
