"""The REST API under ``/billing/v1`` and the token endpoint (docs/contracts.md section 4).

Translates HTTP to ``lifecycle`` calls and back: checks the access token (401, code 57), the scope
its route needs (``scopes``: 401, code 57) and the organisation header (400, code 6041), answers
Zoho's ``{code, message, <resource>}`` envelope, and turns unknown routes and methods into JSON
errors. Only paths are logged: a token can ride in the query string of the token endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from . import listing
from .errors import (
    INVALID_URL,
    METHOD_NOT_ALLOWED,
    NOT_AUTHORIZED,
    ORGANIZATION_MISSING,
    ApiError,
    invalid,
)
from .inputs import (
    CustomerUpdateInput,
    NewSubscriptionPageInput,
    PauseInput,
    SubscriptionChangeInput,
    UpdateSubscriptionPageInput,
    parse_body,
)
from .lifecycle import BillingState
from .listing import ok, paginate
from .oauth import TokenIssuer
from .scopes import required_scope

API_PREFIX = "/billing/v1"
TOKEN_PATH = "/oauth/v2/token"  # noqa: S105 - a path, not a password
ORG_HEADER = "X-com-zoho-subscriptions-organizationid"
# The documented ``filter_by`` values, each as (key, value) an item must have, None for all:
# specs/plans.yml and specs/addons.yml, GET /plans and GET /addons. Anything else is refused.
Filters = dict[str, tuple[str, str] | None]
PLAN_FILTERS: Filters = {
    "PlanStatus.All": None,
    "PlanStatus.ACTIVE": ("status", "active"),
    "PlanStatus.INACTIVE": ("status", "inactive"),
}
ADDON_FILTERS: Filters = {
    "AddonStatus.All": None,
    "AddonStatus.ACTIVE": ("status", "active"),
    "AddonStatus.INACTIVE": ("status", "inactive"),
    "AddonStatus.ONETIME": ("type", "one_time"),
    "AddonStatus.RECURRING": ("type", "recurring"),
}
# specs/customers.yml GET /customers: filter_by Status.(All, Active, Inactive, ...); every
# simulated customer is active, and the rest are not simulated (refused like any unknown value).
CUSTOMER_FILTERS: Filters = {"Status.All": None, "Status.Active": None}

MAX_RECEIVED = 1000  # the newest requests kept for tests; older ones are dropped


@dataclass(frozen=True)
class ApiRequest:
    """One API call as received, so a test can hold the caller to the documented request."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def origin(request: web.Request) -> str:
    return str(request.url.origin())


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").lower()
    if value not in ("true", "false"):
        raise invalid(f"Invalid value passed for {name}: use true or false.")
    return value == "true"


class BillingApi:
    def __init__(
        self,
        state: BillingState,
        tokens: TokenIssuer,
        organization_id: str,
        history: listing.History = lambda event_id: [],
        received: list[ApiRequest] | None = None,
        *,
        hosted_page_wrapped: bool = False,
        events: listing.EventListing | None = None,
        page_context: bool = True,
    ) -> None:
        self._state = state
        self._received = received if received is not None else []
        self._page_context = page_context
        self._hosted_page_wrapped = hosted_page_wrapped
        self._events_listing = events or listing.EventListing()
        self._history = history
        self._tokens = tokens
        self._organization_id = organization_id
        self._log = structlog.get_logger("billing_simulator")

    def register(self, app: web.Application) -> None:
        app.router.add_post(TOKEN_PATH, self._token)
        routes = [
            ("GET", "/plans", self._plans),
            ("GET", "/addons", self._addons),
            ("GET", "/customers", self._customers),
            ("GET", "/customers/{id}", self._customer),
            ("PUT", "/customers/{id}", self._update_customer),
            ("GET", "/subscriptions", self._subscriptions),
            ("GET", "/subscriptions/{id}", self._subscription),
            ("PUT", "/subscriptions/{id}", self._change),
            ("POST", "/subscriptions/{id}/cancel", self._cancel),
            ("POST", "/subscriptions/{id}/reactivate", self._reactivate),
            ("POST", "/subscriptions/{id}/pause", self._pause),
            ("POST", "/subscriptions/{id}/resume", self._resume),
            ("POST", "/hostedpages/newsubscription", self._new_subscription_page),
            ("POST", "/hostedpages/updatesubscription", self._update_subscription_page),
            ("GET", "/hostedpages/{id}", self._hosted_page),
            ("GET", "/events", self._events),
            ("GET", "/events/{id}", self._event),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate API calls and answer every refusal in Zoho's envelope."""
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        raw = await request.read()
        try:
            document = json.loads(raw) if raw.strip() else None
        except ValueError:
            document = None
        path = request.path.removeprefix(API_PREFIX)
        self._received.append(ApiRequest(request.method, path, dict(request.query), document))
        del self._received[:-MAX_RECEIVED]
        try:
            self._authorise(request)
            response = await handler(request)
        except ApiError as exc:
            response = web.json_response(exc.body(), status=exc.status)
        except web.HTTPMethodNotAllowed:
            message = f"The HTTP method {request.method} is not allowed for this resource."
            body = {"code": METHOD_NOT_ALLOWED, "message": message}
            response = web.json_response(body, status=405)
        except web.HTTPNotFound:
            body = {"code": INVALID_URL, "message": "Invalid URL passed."}
            response = web.json_response(body, status=404)
        self._log.info("billing_api_call", method=request.method, path=request.path,
                       status=response.status)  # fmt: skip
        return response

    def _authorise(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        message = "You are not authorized to perform this operation"
        if scheme != "Zoho-oauthtoken" or not self._tokens.is_valid(token.strip()):
            raise ApiError(401, NOT_AUTHORIZED, message)
        scope = self._scope_of(request)
        if scope is not None and scope not in self._tokens.scopes_of(token.strip()):
            self._log.info("billing_scope_refused", path=request.path, scope=scope)
            raise ApiError(401, NOT_AUTHORIZED, message)
        if request.headers.get(ORG_HEADER, "").strip() != self._organization_id:
            message = "This user is not associated with the organization given in " + ORG_HEADER
            raise ApiError(400, ORGANIZATION_MISSING, message)

    @staticmethod
    def _scope_of(request: web.Request) -> str | None:
        """The scope of the matched route; None for an unknown route (answered 404 later)."""
        route = request.match_info.route
        resource = route.resource
        if resource is None or route.method != request.method:
            return None
        return required_scope(request.method, resource.canonical.removeprefix(API_PREFIX))

    async def _token(self, request: web.Request) -> web.Response:
        # Zoho reads the fields from the query string or the form, so this does too.
        fields = {**request.query, **(await request.post())}
        status, body = self._tokens.exchange(
            {key: str(value) for key, value in fields.items()}, origin(request)
        )
        outcome = body.get("error", "granted")
        self._log.info("billing_token_request", status=status, outcome=outcome)
        return web.json_response(body, status=status)

    async def _plans(self, request: web.Request) -> web.Response:
        plans = [plan.to_json() for plan in self._state.catalog.plans.values()]
        rows = self._filtered(request, PLAN_FILTERS, plans)
        return paginate(request, "plans", rows, page_context=self._page_context)

    async def _addons(self, request: web.Request) -> web.Response:
        addons = [addon.to_json() for addon in self._state.catalog.addons.values()]
        rows = self._filtered(request, ADDON_FILTERS, addons)
        return paginate(request, "addons", rows, page_context=self._page_context)

    @staticmethod
    def _filtered(
        request: web.Request, filters: Filters, items: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        given = request.query.get("filter_by")
        if given is None:
            return items
        if given not in filters:
            raise invalid("Invalid value passed for filter_by.")
        wanted = filters[given]
        if wanted is None:
            return items
        key, value = wanted
        return [item for item in items if item.get(key) == value]

    async def _customers(self, request: web.Request) -> web.Response:
        customers = [c.list_json() for c in self._state.ledger.customers.values()]
        rows = self._filtered(request, CUSTOMER_FILTERS, customers)
        return paginate(request, "customers", rows, page_context=self._page_context)

    async def _customer(self, request: web.Request) -> web.Response:
        return ok({"customer": self._state.customer(request.match_info["id"]).to_json()})

    async def _update_customer(self, request: web.Request) -> web.Response:
        self._state.customer(request.match_info["id"])  # 404 before 400, like Zoho
        wanted = parse_body(CustomerUpdateInput, await request.read())
        customer = self._state.update_customer(request.match_info["id"], wanted)
        return ok(
            {"customer": customer.to_json()}, message="The customer details have been updated."
        )

    async def _subscriptions(self, request: web.Request) -> web.Response:
        state = self._state
        rows = listing.subscriptions(request, state.subscriptions.values(), state.calendar.today)
        return paginate(request, "subscriptions", rows, page_context=self._page_context)

    async def _subscription(self, request: web.Request) -> web.Response:
        return ok({"subscription": self._state.subscription(request.match_info["id"]).to_json()})

    async def _change(self, request: web.Request) -> web.Response:
        change = parse_body(SubscriptionChangeInput, await request.read())
        sub = self._state.change(request.match_info["id"], change)
        if change.end_of_term:  # Zoho would wait for the term's end; this simulator does not
            self._log.info("billing_end_of_term_applied_now", subscription_id=sub.subscription_id)
        return ok({"subscription": sub.to_json()})

    async def _cancel(self, request: web.Request) -> web.Response:
        self._state.subscription(request.match_info["id"])  # 404 before 400, like Zoho
        at_end = _flag(request, "cancel_at_end")
        sub = self._state.cancel(request.match_info["id"], at_term_end=at_end)
        return ok({"subscription": sub.to_json()})

    async def _reactivate(self, request: web.Request) -> web.Response:
        return ok({"subscription": self._state.reactivate(request.match_info["id"]).to_json()})

    async def _pause(self, request: web.Request) -> web.Response:
        self._state.subscription(request.match_info["id"])
        pause = parse_body(PauseInput, await request.read(), optional=True)
        return ok({"subscription": self._state.pause(request.match_info["id"], pause).to_json()})

    async def _resume(self, request: web.Request) -> web.Response:
        return ok({"subscription": self._state.resume(request.match_info["id"]).to_json()})

    async def _new_subscription_page(self, request: web.Request) -> web.Response:
        wanted = parse_body(NewSubscriptionPageInput, await request.read())
        page = self._state.open_new_subscription_page(wanted, self._page_origin(request))
        return ok({"hostedpage": page.to_json()}, 201)

    async def _update_subscription_page(self, request: web.Request) -> web.Response:
        wanted = parse_body(UpdateSubscriptionPageInput, await request.read())
        page = self._state.open_update_page(wanted, self._page_origin(request))
        return ok({"hostedpage": page.to_json()}, 201)

    def _page_origin(self, request: web.Request) -> str:
        """Where buyers open hosted pages: the domain the vendor mapped them to, if any."""
        return self._state.pages.mapped_origin or origin(request)

    async def _hosted_page(self, request: web.Request) -> web.Response:
        # Documented flat (hosted-pages.yml, retrieve-a-hosted-page-response); the wrapper the
        # create calls use is only sent when a test asks for it.
        page = self._state.read_page(request.match_info["id"]).to_json()
        return ok({"hostedpage": page} if self._hosted_page_wrapped else page)

    async def _events(self, request: web.Request) -> web.Response:
        rows = listing.events(request, self._state.events, self._events_listing)
        return paginate(request, "events", rows, page_context=False)

    async def _event(self, request: web.Request) -> web.Response:
        event = self._state.event(request.match_info["id"])
        return ok({"event": listing.event_detail(event, self._history)})
