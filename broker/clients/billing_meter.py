"""Measuring Zoho Billing API calls: a counter by endpoint and outcome, and their latency.

The endpoint label is a route template (``GET /subscriptions/{id}/cancel``): every path segment
that is not one of Zoho Billing's resource words becomes ``{id}``, so no subscription, customer or
hosted page id ever becomes a label value and the number of series stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from broker.clients.billing_answers import TokenExpired, never_sent
from broker.errors import BillingNotFound, BillingRateLimited, BillingRejected, BillingUnavailable
from broker.metrics import Metrics

# The words of Zoho Billing's API paths (docs/contracts.md §4); anything else is an id.
ROUTE_WORDS = frozenset(
    {
        "addons",
        "cancel",
        "customers",
        "events",
        "hostedpages",
        "invoices",
        "newsubscription",
        "pause",
        "payments",
        "plans",
        "reactivate",
        "resume",
        "subscriptions",
        "updatesubscription",
    }
)


class BillingCallOutcome(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # billing understood and said no (4xx, or a non-zero code)
    NOT_FOUND = "not_found"
    # A 401: the client refreshes the token and tries again. A label, not a secret.
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    RATE_LIMITED = "rate_limited"  # a 429
    UNAVAILABLE = "unavailable"  # 5xx, a timeout, or the connection lost mid-call
    UNREACHABLE = "unreachable"  # the request never left: connection refused, DNS
    ERROR = "error"  # anything else (a bug of ours): look at the log


def endpoint_of(method: str, path: str) -> str:
    """``GET /subscriptions/{id}`` for ``GET /subscriptions/2077000000012345``."""
    segments = path.split("?", 1)[0].strip("/").split("/")
    template = "/".join(s if s in ROUTE_WORDS else "{id}" for s in segments if s)
    return f"{method.upper()} /{template}"


def outcome_of(error: BaseException) -> BillingCallOutcome:
    # Most specific first: BillingNotFound is a BillingRejected, BillingRateLimited is a
    # BillingUnavailable.
    if isinstance(error, TokenExpired):
        return BillingCallOutcome.TOKEN_EXPIRED
    if isinstance(error, BillingNotFound):
        return BillingCallOutcome.NOT_FOUND
    if isinstance(error, BillingRejected):
        return BillingCallOutcome.REJECTED
    if isinstance(error, BillingRateLimited):
        return BillingCallOutcome.RATE_LIMITED
    if isinstance(error, BillingUnavailable):
        unreachable = never_sent(error)
        return BillingCallOutcome.UNREACHABLE if unreachable else BillingCallOutcome.UNAVAILABLE
    return BillingCallOutcome.ERROR


class CallMeter:
    """Counts and times each attempt; without metrics (``check-config --online``) does nothing."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics

    @contextmanager
    def measure(self, method: str, path: str) -> Iterator[None]:
        started = time.perf_counter()
        outcome = BillingCallOutcome.OK
        try:
            yield
        except Exception as error:
            outcome = outcome_of(error)
            raise
        finally:
            if self._metrics is not None:
                endpoint = endpoint_of(method, path)
                self._metrics.billing_calls.labels(endpoint, str(outcome)).inc()
                self._metrics.billing_latency.labels(endpoint).observe(
                    time.perf_counter() - started
                )
