"""Which OAuth scope each simulated API route needs, as Zoho's OpenAPI documents give it.

The table is data: ``docs/contracts.md`` §4.1 lists the same rows and a test compares the two, so
the documentation and the simulator cannot drift apart. Sources are Zoho Billing's OpenAPI
documents (``security: Zoho_Auth``) for every route but pause and resume, which the documents do
not list: those follow cancel and reactivate (**[unsure]**).

A token without a route's scope is refused like an invalid one, HTTP 401 with code 57
(**[unsure]**: Zoho documents the code for an unauthorised request, not how a scope mismatch
answers), so a client can only tell "missing scope" from "expired token" by refreshing once.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class RouteScope:
    method: str
    path: str  # relative to /billing/v1, ids written {id}
    scope: str
    source: str  # the OpenAPI document and operation that says so


def _rows() -> tuple[RouteScope, ...]:
    subscriptions = "specs/subscription.yml"
    return (
        RouteScope("GET", "/plans", "ZohoSubscriptions.plans.READ", "specs/plans.yml: GET /plans"),
        RouteScope(
            "GET", "/addons", "ZohoSubscriptions.addons.READ", "specs/addons.yml: GET /addons"
        ),
        RouteScope(
            "GET",
            "/customers",
            "ZohoSubscriptions.customers.READ",
            "specs/customers.yml: GET /customers",
        ),
        RouteScope(
            "GET",
            "/customers/{id}",
            "ZohoSubscriptions.customers.READ",
            "specs/customers.yml: GET /customers/{customer_id}",
        ),
        RouteScope(
            "PUT",
            "/customers/{id}",
            "ZohoSubscriptions.customers.UPDATE",
            "specs/customers.yml: PUT /customers/{customer_id}",
        ),
        RouteScope(
            "GET",
            "/subscriptions",
            "ZohoSubscriptions.subscriptions.READ",
            f"{subscriptions}: GET /subscriptions",
        ),
        RouteScope(
            "GET",
            "/subscriptions/{id}",
            "ZohoSubscriptions.subscriptions.READ",
            f"{subscriptions}: GET /subscriptions/{{subscription_id}}",
        ),
        RouteScope(
            "PUT",
            "/subscriptions/{id}",
            "ZohoSubscriptions.subscriptions.UPDATE",
            f"{subscriptions}: PUT /subscriptions/{{subscription_id}}",
        ),
        RouteScope(
            "POST",
            "/subscriptions/{id}/cancel",
            "ZohoSubscriptions.subscriptions.CREATE",
            f"{subscriptions}: POST /subscriptions/{{subscription_id}}/cancel",
        ),
        RouteScope(
            "POST",
            "/subscriptions/{id}/reactivate",
            "ZohoSubscriptions.subscriptions.CREATE",
            f"{subscriptions}: POST /subscriptions/{{subscription_id}}/reactivate",
        ),
        RouteScope(
            "POST",
            "/subscriptions/{id}/pause",
            "ZohoSubscriptions.subscriptions.CREATE",
            "not in the documents [unsure]: as cancel and reactivate",
        ),
        RouteScope(
            "POST",
            "/subscriptions/{id}/resume",
            "ZohoSubscriptions.subscriptions.CREATE",
            "not in the documents [unsure]: as cancel and reactivate",
        ),
        RouteScope(
            "POST",
            "/hostedpages/newsubscription",
            "ZohoSubscriptions.hostedpages.CREATE",
            "specs/hosted-pages.yml: POST /hostedpages/newsubscription",
        ),
        RouteScope(
            "POST",
            "/hostedpages/updatesubscription",
            "ZohoSubscriptions.hostedpages.CREATE",
            "specs/hosted-pages.yml: POST /hostedpages/updatesubscription",
        ),
        RouteScope(
            "GET",
            "/hostedpages/{id}",
            "ZohoSubscriptions.hostedpages.READ",
            "specs/hosted-pages.yml: GET /hostedpages/{hostedpage_id}",
        ),
        RouteScope(
            "GET", "/events", "ZohoSubscriptions.webhooks.READ", "specs/events.yml: GET /events"
        ),
        RouteScope(
            "GET",
            "/events/{id}",
            "ZohoSubscriptions.webhooks.READ",
            "specs/events.yml: GET /events/{event_id}",
        ),
    )


ROUTE_SCOPES: tuple[RouteScope, ...] = _rows()
SCOPE_OF: MappingProxyType[tuple[str, str], str] = MappingProxyType(
    {(row.method, row.path): row.scope for row in ROUTE_SCOPES}
)
ALL_SCOPES: frozenset[str] = frozenset(SCOPE_OF.values())


def required_scope(method: str, path: str) -> str | None:
    """The scope ``method path`` needs (``path`` as registered, under ``/billing/v1``)."""
    return SCOPE_OF.get((method.upper(), path))
