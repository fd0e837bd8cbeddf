"""The REST API under ``/billing/v1`` and the token endpoint (docs/contracts.md section 4).

Translates HTTP to ``lifecycle`` calls and back: checks the access token (401, code 57) and the
organisation header (400, code 6041), answers Zoho's ``{code, message, <resource>}`` envelope,
and turns unknown routes and methods into JSON errors. Only paths are logged: a token can ride in
the query string of the token endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
    NewSubscriptionPageInput,
    PauseInput,
    SubscriptionChangeInput,
    UpdateSubscriptionPageInput,
    parse_body,
)
from .lifecycle import BillingState
from .listing import ok, paginate
from .oauth import TokenIssuer

API_PREFIX = "/billing/v1"
TOKEN_PATH = "/oauth/v2/token"  # noqa: S105 - a path, not a password
ORG_HEADER = "X-com-zoho-subscriptions-organizationid"
PLAN_FILTERS = {"PlanStatus.ALL": None, "PlanStatus.ACTIVE": "active"}
PLAN_FILTERS |= {"PlanStatus.INACTIVE": "inactive"}
ADDON_FILTERS = {"AddonStatus.ALL": None, "AddonStatus.ACTIVE": "active"}
ADDON_FILTERS |= {"AddonStatus.INACTIVE": "inactive"}

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
        *,
        hosted_page_wrapped: bool = False,
        events: listing.EventListing | None = None,
        page_context: bool = True,
    ) -> None:
        self._state = state
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
            ("GET", "/customers/{id}", self._customer),
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
        if scheme != "Zoho-oauthtoken" or not self._tokens.is_valid(token.strip()):
            message = "You are not authorized to perform this operation"
            raise ApiError(401, NOT_AUTHORIZED, message)
        if request.headers.get(ORG_HEADER, "").strip() != self._organization_id:
            message = "This user is not associated with the organization given in " + ORG_HEADER
            raise ApiError(400, ORGANIZATION_MISSING, message)

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
        wanted = self._status_filter(request, PLAN_FILTERS)
        plans = self._state.catalog.plans.values()
        rows = [p.to_json() for p in plans if wanted in (None, p.status)]
        return paginate(request, "plans", rows, page_context=self._page_context)

    async def _addons(self, request: web.Request) -> web.Response:
        wanted = self._status_filter(request, ADDON_FILTERS)
        addons = self._state.catalog.addons.values()
        rows = [a.to_json() for a in addons if wanted in (None, a.status)]
        return paginate(request, "addons", rows, page_context=self._page_context)

    @staticmethod
    def _status_filter(request: web.Request, filters: dict[str, str | None]) -> str | None:
        given = request.query.get("filter_by")
        if given is None:
            return None
        if given not in filters:
            raise invalid("Invalid value passed for filter_by.")
        return filters[given]

    async def _customer(self, request: web.Request) -> web.Response:
        return ok({"customer": self._state.customer(request.match_info["id"]).to_json()})

    async def _subscriptions(self, request: web.Request) -> web.Response:
        rows = listing.subscriptions(request, self._state.subscriptions.values())
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
        page = self._state.open_new_subscription_page(wanted, origin(request))
        return ok({"hostedpage": page.to_json()}, 201)

    async def _update_subscription_page(self, request: web.Request) -> web.Response:
        wanted = parse_body(UpdateSubscriptionPageInput, await request.read())
        page = self._state.open_update_page(wanted, origin(request))
        return ok({"hostedpage": page.to_json()}, 201)

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
