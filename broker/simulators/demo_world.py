"""The demo's world: its orgs and users, its per-run secrets, the settings that wire the broker to
the simulators, and the one consistent story the simulated billing starts with.

The story: the first demo org has nothing yet (the page sells it a plan); the second org already
bought a plan in billing, but billing's webhooks for it were dropped, so the broker does not know
yet. The sample webhook the demo offers is that subscription's real ``subscription_created`` body,
so posting it tells the broker what billing already knows, and no org ends up with two
subscriptions. ``demo-data/`` persists between runs while the simulated billing starts empty, so
``--reset`` wipes the files the demo made there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from broker.config import (
    BillingSettings,
    DeliverySettings,
    LandingSettings,
    LandingVerification,
    OidcSettings,
    PausePolicy,
    PlansSettings,
    PlatformSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from broker.simulators.accounts import AccountsSimulator, SimUser
from broker.simulators.billing import BillingSimulator

DEMO_APP_DOMAIN = "demoapp"
DEMO_ZUID = "600000001"
DEMO_ZGID = "700000001"
DEMO_ORGANIZATION_ID = "10234695"
DEMO_CLIENT_ID = "1000.DEMOCLIENT"
LINK_SECRET_FILE = "link-secret"  # noqa: S105 - a file name, not a secret
DEMO_OIDC_CLIENT_ID = "1000.DEMOSIGNIN"
DEMO_USERS = (
    SimUser(zuid=DEMO_ZUID, email="owner@demo.example", name="Dana Owner", zgid=DEMO_ZGID),
    SimUser(zuid="600000002", email="member@demo.example", name="Sam Member", zgid=DEMO_ZGID),
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
    store_url: str | None = None,
) -> Settings:
    """The demo's settings: signed links (or ``verify``); with ``accounts_port``, Sign in with
    Zoho against the accounts simulator; ``store_url`` (PostgreSQL) instead of the SQLite file."""
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
                org_url=f"http://{host}:{accounts_port}/crm/v2/org",
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
        store=StoreSettings(path=data_dir / "broker.db", url=store_url),
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
            # The demo vendor has chosen: the app keeps working through a pause, so the demo
            # can show pausing (a real deployment must choose; the default offers none).
            pause_policy=PausePolicy.KEEP,
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


def accounts_simulator(host: str, port: int, accounts_port: int, secret: str) -> AccountsSimulator:
    """Zoho Accounts for Sign in with Zoho, with the demo org's two users."""
    accounts = AccountsSimulator(DEMO_OIDC_CLIENT_ID, secret, list(DEMO_USERS))
    accounts.origin = f"http://{host}:{accounts_port}"
    accounts.redirect_uris.add(f"http://{host}:{port}/manage/oidc/callback")
    return accounts


# Every file the demo writes in its data directory; --reset removes these and nothing else.
DEMO_FILES = (
    "broker.db",
    "broker.db-wal",
    "broker.db-shm",
    "zapikey.header",
    "link-secret",
    "sample-event.json",
)
STORY_PLAN = f"{DEMO_APP_DOMAIN}_1002"  # Professional, monthly
STORY_USERS, STORY_STORAGE_UNITS = 5, 2


def seed_story(billing: BillingSimulator) -> bytes:
    """Subscribe the second demo org in billing with its webhooks dropped, as if Zoho had failed
    to deliver them; the ``subscription_created`` body is returned for the demo to offer."""
    org = DEMO_ORGS[1]
    billing.drop_next_webhooks(2)  # subscription_created and payment_thankyou
    sub = billing.subscribe(
        STORY_PLAN,
        quantity=STORY_USERS,
        addons={f"{DEMO_APP_DOMAIN}_storage": STORY_STORAGE_UNITS},
        display_name=org.company_name,
        email=org.email,
        zuid=org.zuid,
        zgid=org.zgid,
    )
    created = next(
        event
        for event in billing.events
        if event.event_type == "subscription_created"
        and event.payload["data"]["subscription"]["subscription_id"] == sub.subscription_id
    )
    return created.body


def reset_data_dir(data_dir: Path) -> str:
    """Remove the files the demo made in ``data_dir`` (never anything else); say what was done."""
    removed = [name for name in DEMO_FILES if (data_dir / name).is_file()]
    for name in removed:
        (data_dir / name).unlink()
    if not removed:
        return f"--reset: nothing to remove in {data_dir}"
    others = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
    kept = f"; other files were left alone: {', '.join(others)}" if others else ""
    return f"--reset: removed {', '.join(removed)} from {data_dir}{kept}"
