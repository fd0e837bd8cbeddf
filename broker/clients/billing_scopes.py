"""Which OAuth scope each Zoho Billing call of the broker needs, and how to test a read scope.

Zoho answers a token without a call's scope as it answers an expired one (HTTP 401, code 57,
docs/contracts.md §4.1 [unsure]), so the client refreshes once; a fresh token refused again means
the refresh token was generated without the scope, and ``missing_scope`` names it. The table is
the broker's own copy of Zoho's documents (``docs/contracts.md`` §4.1); a test keeps it, the
documentation and the billing simulator's table equal. ``READ_PROBES`` are the calls
``check-config --online`` makes to prove each read scope without changing anything; write
scopes cannot be tested so, and are only listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from broker.clients.billing_meter import endpoint_of
from broker.errors import BillingAuthError, BillingScopeMissing

PLANS_READ = "ZohoSubscriptions.plans.READ"
ADDONS_READ = "ZohoSubscriptions.addons.READ"
CUSTOMERS_READ = "ZohoSubscriptions.customers.READ"
CUSTOMERS_UPDATE = "ZohoSubscriptions.customers.UPDATE"
SUBSCRIPTIONS_READ = "ZohoSubscriptions.subscriptions.READ"
SUBSCRIPTIONS_UPDATE = "ZohoSubscriptions.subscriptions.UPDATE"
SUBSCRIPTIONS_CREATE = "ZohoSubscriptions.subscriptions.CREATE"
HOSTEDPAGES_READ = "ZohoSubscriptions.hostedpages.READ"
HOSTEDPAGES_CREATE = "ZohoSubscriptions.hostedpages.CREATE"
WEBHOOKS_READ = "ZohoSubscriptions.webhooks.READ"

# Endpoint (as ``billing_meter.endpoint_of`` writes it) -> the scope Zoho's documents give.
SCOPE_OF_ENDPOINT: MappingProxyType[str, str] = MappingProxyType(
    {
        "GET /plans": PLANS_READ,
        "GET /addons": ADDONS_READ,
        "GET /customers": CUSTOMERS_READ,
        "GET /customers/{id}": CUSTOMERS_READ,
        "PUT /customers/{id}": CUSTOMERS_UPDATE,
        "GET /subscriptions": SUBSCRIPTIONS_READ,
        "GET /subscriptions/{id}": SUBSCRIPTIONS_READ,
        "PUT /subscriptions/{id}": SUBSCRIPTIONS_UPDATE,
        "POST /subscriptions/{id}/cancel": SUBSCRIPTIONS_CREATE,
        "POST /subscriptions/{id}/reactivate": SUBSCRIPTIONS_CREATE,
        "POST /subscriptions/{id}/pause": SUBSCRIPTIONS_CREATE,  # [unsure]: not documented
        "POST /subscriptions/{id}/resume": SUBSCRIPTIONS_CREATE,  # [unsure]: not documented
        "POST /hostedpages/newsubscription": HOSTEDPAGES_CREATE,
        "POST /hostedpages/updatesubscription": HOSTEDPAGES_CREATE,
        "GET /hostedpages/{id}": HOSTEDPAGES_READ,
        "GET /events": WEBHOOKS_READ,
        "GET /events/{id}": WEBHOOKS_READ,
    }
)
REQUIRED_SCOPES: tuple[str, ...] = tuple(sorted(set(SCOPE_OF_ENDPOINT.values())))
SETUP_HINT = (
    "generate a new refresh token with every scope docs/zoho-setup.md lists; "
    "`broker check-config --online` names each one missing"
)
# An id no organisation has: a read of it answers 404 when the scope is granted.
PROBE_ID = "0"


@dataclass(frozen=True)
class ScopeProbe:
    """A call that reads with ``scope`` and changes nothing; ``absent_ok``: a 404 proves it."""

    scope: str
    path: str
    params: MappingProxyType[str, str]
    absent_ok: bool = False


def _page(path: str, scope: str) -> ScopeProbe:
    return ScopeProbe(scope, path, MappingProxyType({"page": "1", "per_page": "1"}))


READ_PROBES: tuple[ScopeProbe, ...] = (
    _page("/plans", PLANS_READ),
    _page("/addons", ADDONS_READ),
    _page("/subscriptions", SUBSCRIPTIONS_READ),
    ScopeProbe(CUSTOMERS_READ, f"/customers/{PROBE_ID}", MappingProxyType({}), absent_ok=True),
    ScopeProbe(HOSTEDPAGES_READ, f"/hostedpages/{PROBE_ID}", MappingProxyType({}), absent_ok=True),
    _page("/events", WEBHOOKS_READ),
)
WRITE_SCOPES: tuple[str, ...] = tuple(s for s in REQUIRED_SCOPES if not s.endswith(".READ"))


def scope_for(method: str, path: str) -> str | None:
    return SCOPE_OF_ENDPOINT.get(endpoint_of(method, path))


def missing_scope(method: str, path: str) -> BillingAuthError:
    """The error for a call refused with a freshly issued token: the scope, when we know it."""
    endpoint = endpoint_of(method, path)
    scope = SCOPE_OF_ENDPOINT.get(endpoint)
    if scope is None:
        return BillingAuthError(
            f"Zoho Billing refused a freshly issued access token for {endpoint}",
            hint="check the OAuth client's scopes and the organization id",
        )
    return BillingScopeMissing(
        f"Zoho Billing refused a freshly issued access token for {endpoint}: the refresh "
        f"token probably lacks the scope {scope}",
        scope=scope,
        hint=SETUP_HINT,
    )
