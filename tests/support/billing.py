"""What the billing simulator and billing client tests share: one simulated Zoho Billing org."""

from __future__ import annotations

from datetime import date
from typing import Any

from broker.simulators.billing import BillingSimulator

APP = "testapp"
CLIENT_ID = "1000.SIMCLIENT"
CLIENT_SECRET = "sim-client-secret-0123"
REFRESH_TOKEN = "1000.sim-refresh-token-4567"
ORG = "10234695"
ORG_HEADER = "X-com-zoho-subscriptions-organizationid"
JUNE_1 = date(2026, 6, 1)
STANDARD, PROFESSIONAL, STANDARD_YEARLY = f"{APP}_1001", f"{APP}_1002", f"{APP}_1001_Y"
STORAGE = f"{APP}_storage"


def make_sim(**overrides: Any) -> BillingSimulator:
    """A billing simulator for org ORG on JUNE_1, with these credentials."""
    options: dict[str, Any] = {
        "app_domain": APP,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "organization_id": ORG,
        "today": JUNE_1,
    }
    return BillingSimulator(**(options | overrides))
