"""Client of the Zoho Billing REST API (docs/contracts.md §4), for the Manage Subscription page.

It owns the organisation header, the daily budget's gate and retries: connection errors, 5xx and
429 are retried with backoff (honouring ``Retry-After``); a 401 refreshes the token
(``billing_token``) and tries once more, and a second 401 is a scope the refresh token lacks
(``billing_scopes`` names it). A 429 that is finally given up on closes the client until its
Retry-After (60 s without one): calls fail at once meanwhile. Every attempt first asks the
``CallGate`` (the daily budget, counted in the store) at the call's priority: writes and checkout
reads are a customer's, other reads the task's (``core.billing_budget``); a refused call raises
``BillingBudgetSpent`` and is not retried. A quota answer (Zoho's codes 44, 45, 1070) is never
retried either, and is reported to the gate, which remembers it for every replica. At most
``billing.concurrent_calls`` calls are in flight per process. What each answer means is
``billing_answers``'. No token or secret is ever logged or put into an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import aiohttp
import structlog
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from broker.clients.billing_answers import (
    TokenExpired,
    envelope,
    is_quota_answer,
    never_sent,
    unsent,
)
from broker.clients.billing_meter import CallMeter
from broker.clients.billing_pages import read_list, skip_row
from broker.clients.billing_scopes import missing_scope
from broker.clients.billing_token import AccessTokens
from broker.clients.http import json_body, parse_retry_after
from broker.config import BillingSettings
from broker.core.billing_budget import CallPriority, current_priority
from broker.core.billing_events import (
    BillingCustomer,
    BillingSubscription,
    CatalogAddon,
    CatalogPlan,
    ListedSubscription,
    describe_validation_errors,
)
from broker.core.billing_requests import (
    CustomerUpdate,
    NewSubscriptionPage,
    PauseRequest,
    SubscriptionUpdate,
    UpdateSubscriptionPage,
)
from broker.core.hosted_pages import HostedPage, read_hosted_page
from broker.core.ids import HOSTED_PAGE_ID, path_segment
from broker.errors import (
    BillingAnswerInvalid,
    BillingBudgetSpent,
    BillingRateLimited,
    BillingUnavailable,
)
from broker.metrics import Metrics

log = structlog.get_logger(__name__)

ORG_HEADER = "X-com-zoho-subscriptions-organizationid"
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD"})
DEFAULT_BUSY_SECONDS = 60.0  # a 429 without Retry-After: Zoho's limits are per minute
Sleep = Callable[[float], Awaitable[None]]
Answer = TypeVar("Answer", bound=BaseModel)


class CallGate(Protocol):
    """The daily budget as the client sees it (``delivery.daily_budget`` keeps it)."""

    async def admit(self, priority: CallPriority) -> None:
        """Count one call, or raise ``BillingBudgetSpent`` (nothing is sent then)."""

    async def quota_answered(self, error: BillingRateLimited) -> None:
        """Billing answered that its quota is spent: remember it for every replica."""


@dataclass
class _Busy:
    """Until when nobody calls (a 429's Retry-After); shared by a client and its copies."""

    until: float = 0.0
    quota: bool = False  # the last wait was a quota answer (Zoho's codes 44, 45, 1070)


def priority_of(method: str, path: str) -> CallPriority:
    """Writes and checkout reads are a customer's; any other read is the task's."""
    if method.upper() != "GET" or path.startswith("/hostedpages/"):
        return CallPriority.CUSTOMER
    return current_priority()


class BillingClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: BillingSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        gate: CallGate | None = None,
    ) -> None:
        self._session = session
        self._gate = gate
        # Per process: a limit across replicas would need a lease per call (see the setting).
        self._slots = asyncio.Semaphore(settings.concurrent_calls)
        self._meter = CallMeter(metrics)
        self._settings = settings
        self._sleep = sleep
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_seconds)
        self._tokens = AccessTokens(session, settings, clock=clock, timeout=self._timeout)
        self._busy = _Busy()
        self._backoff = wait_exponential_jitter(
            multiplier=settings.initial_backoff_seconds,
            max=settings.max_backoff_seconds,
            jitter=settings.initial_backoff_seconds,
        )

    # -- the API the page uses ---------------------------------------------------------------

    async def list_plans(self) -> list[CatalogPlan]:
        items = await self._all_pages("/plans", "plans", {"filter_by": "PlanStatus.ACTIVE"})
        return _items(CatalogPlan, items, "plans")

    async def list_addons(self) -> list[CatalogAddon]:
        items = await self._all_pages("/addons", "addons", {"filter_by": "AddonStatus.ACTIVE"})
        return _items(CatalogAddon, items, "addons")

    async def get_subscription(self, subscription_id: str) -> BillingSubscription | None:
        body = await self.request(
            "GET", f"/subscriptions/{path_segment('subscription', subscription_id)}"
        )
        return _resource(BillingSubscription, body, "subscription")

    async def get_customer(self, customer_id: str) -> BillingCustomer | None:
        body = await self.request("GET", f"/customers/{path_segment('customer', customer_id)}")
        return _resource(BillingCustomer, body, "customer")

    async def update_customer(
        self, customer_id: str, update: CustomerUpdate
    ) -> BillingCustomer | None:
        body = await self.request(
            "PUT", f"/customers/{path_segment('customer', customer_id)}", json=update.body()
        )
        return _resource(BillingCustomer, body, "customer")

    async def new_subscription_page(self, page: NewSubscriptionPage) -> HostedPage:
        body = await self.request("POST", "/hostedpages/newsubscription", json=page.body())
        return read_hosted_page(body)

    async def update_subscription_page(self, page: UpdateSubscriptionPage) -> HostedPage:
        body = await self.request("POST", "/hostedpages/updatesubscription", json=page.body())
        return read_hosted_page(body)

    async def get_hosted_page(self, hostedpage_id: str) -> HostedPage:
        """The checkout as billing reports it. A paid page's subscription is kept as billing
        sent it (the pipeline reads it), but one that does not read as a subscription is
        ``BillingAnswerInvalid`` here, not a failure once the payment is being recorded."""
        body = await self.request(
            "GET", f"/hostedpages/{path_segment('hosted page', hostedpage_id, HOSTED_PAGE_ID)}"
        )
        page = read_hosted_page(body)
        if page.subscription is not None:
            _parsed(BillingSubscription, page.subscription, "data.subscription")
        return page

    async def update_subscription(
        self, subscription_id: str, update: SubscriptionUpdate
    ) -> BillingSubscription | None:
        body = await self.request(
            "PUT",
            f"/subscriptions/{path_segment('subscription', subscription_id)}",
            json=update.body(),
        )
        return _resource(BillingSubscription, body, "subscription")

    async def cancel_subscription(
        self, subscription_id: str, *, at_term_end: bool
    ) -> BillingSubscription | None:
        body = await self.request(
            "POST",
            f"/subscriptions/{path_segment('subscription', subscription_id)}/cancel",
            params={"cancel_at_end": "true" if at_term_end else "false"},
        )
        return _resource(BillingSubscription, body, "subscription")

    async def reactivate_subscription(self, subscription_id: str) -> BillingSubscription | None:
        body = await self.request(
            "POST", f"/subscriptions/{path_segment('subscription', subscription_id)}/reactivate"
        )
        return _resource(BillingSubscription, body, "subscription")

    async def pause_subscription(
        self, subscription_id: str, pause: PauseRequest | None = None
    ) -> BillingSubscription | None:
        body = await self.request(
            "POST",
            f"/subscriptions/{path_segment('subscription', subscription_id)}/pause",
            json=pause.body() if pause is not None else {},
        )
        return _resource(BillingSubscription, body, "subscription")

    async def resume_subscription(self, subscription_id: str) -> BillingSubscription | None:
        body = await self.request(
            "POST", f"/subscriptions/{path_segment('subscription', subscription_id)}/resume"
        )
        return _resource(BillingSubscription, body, "subscription")

    # -- looking before selling (docs/contracts.md §4, "Which subscriptions an org has") ------

    async def subscriptions_of_customer(self, customer_id: str) -> list[ListedSubscription]:
        """Every subscription of one billing customer, as list items (no plan object).

        Strict, unlike the other lists: the page reads this before it sells, and a row it
        cannot read may be a subscription the org pays for, so such a row refuses the list
        (the page then offers no plan) instead of being skipped."""
        customer = path_segment("customer", customer_id)
        items = await self._all_pages(
            "/subscriptions", "subscriptions", {"customer_id": customer}, strict=True
        )
        return [_parsed(ListedSubscription, row, f"subscriptions[{index}]") for index, row in items]

    async def list_customers(self) -> list[BillingCustomer]:
        """Every billing customer as the list shows them (documented: no custom fields)."""
        items = await self._all_pages("/customers", "customers", {"filter_by": "Status.All"})
        return _items(BillingCustomer, items, "customers")

    # -- plumbing ----------------------------------------------------------------------------

    async def _all_pages(
        self, path: str, resource: str, params: dict[str, str], *, strict: bool = False
    ) -> list[tuple[int, dict[str, object]]]:
        return await read_list(
            self.request,
            path,
            resource,
            params,
            max_pages=self._settings.max_list_pages,
            strict=strict,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, object] | None = None,
    ) -> dict[str, object]:
        """One API call with retries; returns the envelope when ``code`` is 0."""
        busy_for = self.busy_for()
        if busy_for > 0 and self._busy.quota:
            raise BillingBudgetSpent(
                "Billing was not called: Zoho Billing answered that the organisation's API "
                "quota is spent",
                retry_after=busy_for,
            )
        if busy_for > 0:
            # Zoho said when to come back (Retry-After): until then nobody calls, so one busy
            # minute is not stretched by every page view that follows.
            raise BillingRateLimited(
                "Zoho Billing asked us to wait before calling again", retry_after=busy_for
            )
        try:
            return await self._request_with_retries(method, path, params, json)
        except BillingBudgetSpent:
            raise  # nothing was sent: the budget, not billing, said wait
        except BillingRateLimited as error:
            wait = error.retry_after if error.retry_after is not None else DEFAULT_BUSY_SECONDS
            self._busy.until = max(self._busy.until, self._clock() + wait)
            self._busy.quota = is_quota_answer(error)
            log.warning("billing.rate_limited", path=path, retry_after=round(wait, 1))
            if is_quota_answer(error) and self._gate is not None:
                await self._gate.quota_answered(error)
            raise

    def busy_for(self) -> float:
        """Seconds left before billing may be called again after a 429 (0: call away)."""
        return max(0.0, self._busy.until - self._clock())

    async def _request_with_retries(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: dict[str, object] | None,
    ) -> dict[str, object]:
        idempotent = method in IDEMPOTENT_METHODS

        def worth_retrying(error: BaseException) -> bool:
            if isinstance(error, BillingBudgetSpent):
                return False
            if isinstance(error, BillingRateLimited):
                if is_quota_answer(error):
                    return False  # a day's quota does not lift within a retry
                # Worth waiting for only if a user waiting on the page could bear it.
                wait = error.retry_after or 0.0
                return wait <= self._settings.max_retry_after_seconds
            # A POST (cancel, pause, checkout) that may have reached Zoho is never sent twice.
            return isinstance(error, BillingUnavailable) and (idempotent or never_sent(error))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await self._call(method, path, params, json)
                except TokenExpired as refused:
                    return await self._after_refusal(refused, method, path, params, json)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _after_refusal(
        self,
        refused: TokenExpired,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: dict[str, object] | None,
    ) -> dict[str, object]:
        """A 401: refresh and try once more, unless this token is already known to lack a
        scope (refreshing again would only spend Zoho's few refreshes a minute)."""
        # The token this call carried: with calls queued for a slot, another may already have
        # replaced it, and refreshing again would spend a refresh for nothing.
        stale = refused.token if refused.token is not None else self._tokens.token
        if not self._tokens.known_to_lack_scopes(stale):
            await self._tokens.refresh(stale=stale)
            try:
                return await self._call(method, path, params, json)
            except TokenExpired as again:
                stale = again.token if again.token is not None else self._tokens.token
        self._tokens.refused_although_fresh(stale)
        error = missing_scope(method, path)
        log.error("billing.scope_missing", path=path, scope=error.details.get("scope"))
        raise error

    def _wait(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, BillingRateLimited) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._settings.max_retry_after_seconds))
        return delay

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: dict[str, object] | None,
    ) -> dict[str, object]:
        if self._gate is not None:
            await self._gate.admit(priority_of(method, path))
        async with self._slots:
            return await self._send(method, path, params, json)

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: dict[str, object] | None,
    ) -> dict[str, object]:
        token = await self._tokens.current()
        url = f"{self._settings.resolved_base_url}{path}"
        headers = {
            "Authorization": f"Zoho-oauthtoken {token}",
            ORG_HEADER: self._settings.organization_id,
        }
        with self._meter.measure(method, path):
            started = time.perf_counter()
            try:
                async with self._session.request(
                    method, url, params=params, json=json, headers=headers, timeout=self._timeout
                ) as response:
                    status = response.status
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    body = await json_body(response)
            except TimeoutError:
                raise BillingUnavailable("Zoho Billing did not answer in time") from None
            except aiohttp.ClientConnectorError as exc:
                raise unsent(
                    BillingUnavailable(f"could not reach Zoho Billing ({type(exc).__name__})")
                ) from None
            except aiohttp.ClientError as exc:
                raise BillingUnavailable(
                    f"lost the connection to Zoho Billing ({type(exc).__name__})"
                ) from None
            log.info(
                "billing.call",
                method=method,
                path=path,
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            try:
                return envelope(status, body, retry_after)
            except TokenExpired:
                raise TokenExpired(token) from None


def _resource(model: type[Answer], body: dict[str, object], resource: str) -> Answer | None:
    """The answer's ``resource`` object as ``model``; None when billing answered only
    ``{code, message}`` (some actions do: the caller then re-reads)."""
    value = body.get(resource)
    if value is None:
        return None
    return _parsed(model, value, resource)


def _items(
    model: type[Answer], rows: list[tuple[int, dict[str, object]]], resource: str
) -> list[Answer]:
    """Each listed row that reads as ``model``. One that does not is skipped with a warning,
    never the whole list: before answers were models, such rows were skipped or passed over by
    their readers (another product's plan with an odd ``product_id``, a subscription row
    without an id), so refusing the list would lose every good row for one bad one."""
    read: list[Answer] = []
    for index, row in rows:
        try:
            read.append(_parsed(model, row, f"{resource}[{index}]"))
        except BillingAnswerInvalid as exc:
            skip_row(resource, index, row, exc.problems)
    return read


def _parsed(model: type[Answer], value: object, where: str) -> Answer:
    """One answer object as ``model``, or ``BillingAnswerInvalid`` naming what is wrong."""
    if not isinstance(value, dict):
        raise BillingAnswerInvalid(
            f"Zoho Billing answered {where} with a {type(value).__name__}, not an object",
            problems=[f"{where}: not an object"],
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = [f"{where}.{line}" for line in describe_validation_errors(exc)]
        raise BillingAnswerInvalid(
            f"Zoho Billing answered {where} in a shape we cannot read: {problems[0]}",
            problems=problems,
        ) from None
