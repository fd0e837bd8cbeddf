"""The list endpoints' query parameters: pagination and the filters of ``GET /subscriptions``,
and how ``GET /events`` lists the event log.

Documented [doc]: ``page``, ``per_page`` (at most 200) and ``page_context.has_more_page`` (on
invoices only, specs/invoices.yml: the other lists send it only when the simulator is told to);
``customer_id`` and the ``filter_by`` values of specs/subscription.yml on subscriptions (others
are refused). ``GET /events`` documents no parameter but the organisation header and list items of
only ``event_id``, ``event_type`` and ``event_time`` (specs/events.yml,
list-of-events-response), no ``page_context``; its order is not documented either way
(``EventListing``). Unknown parameters are ignored, as a server that does not know them would.
Guessed [unsure]: ``plan_code`` and ``product_id`` on subscriptions. Anything malformed is a 400
with code 4 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from aiohttp import web

from .errors import invalid
from .records import Event, Subscription

MAX_PER_PAGE = 200
History = Callable[[str], list[dict[str, Any]]]  # event_id -> its webhooks, as Zoho lists them
Wanted = Callable[[Subscription, date], bool]  # (subscription, today) -> listed?


def _statuses(*names: str) -> Wanted:
    return lambda sub, today: sub.status in names


def _cancelled_in(months_back: int) -> Wanted:
    def wanted(sub: Subscription, today: date) -> bool:
        month = today.year * 12 + today.month - 1 - months_back
        when = sub.cancelled_at
        return (
            sub.status == "cancelled"
            and when is not None
            and (when.year * 12 + when.month - 1 == month)
        )

    return wanted


# The documented values only (specs/subscription.yml, GET /subscriptions ``filter_by``): the
# SubscriptionStatus words and SubscriptionMode.ONLINE / OFFLINE. Anything else is refused.
SUBSCRIPTION_FILTERS: dict[str, Wanted | None] = {
    "SubscriptionStatus.All": None,
    "SubscriptionStatus.ACTIVE": _statuses("live", "trial", "future", "non_renewing", "dunning"),
    "SubscriptionStatus.LIVE": _statuses("live"),
    "SubscriptionStatus.FUTURE": _statuses("future"),
    "SubscriptionStatus.TRIAL": _statuses("trial"),
    "SubscriptionStatus.PAST_DUE": _statuses("dunning"),
    "SubscriptionStatus.UNPAID": _statuses("unpaid"),
    "SubscriptionStatus.NON_RENEWING": _statuses("non_renewing"),
    "SubscriptionStatus.CANCELLED_FROM_DUNNING": _statuses("cancelled_from_dunning"),
    "SubscriptionStatus.CANCELLED": _statuses("cancelled"),
    "SubscriptionStatus.EXPIRED": _statuses("expired"),
    "SubscriptionStatus.TRIAL_EXPIRED": _statuses("trial_expired"),
    "SubscriptionStatus.CANCELLED_LAST_MONTH": _cancelled_in(1),
    "SubscriptionStatus.CANCELLED_THIS_MONTH": _cancelled_in(0),
    # Every simulated subscription is paid through a checkout: online.
    "SubscriptionMode.ONLINE": None,
    "SubscriptionMode.OFFLINE": lambda sub, today: False,
}


def ok(resources: dict[str, Any], status: int = 200, message: str = "success") -> web.Response:
    return web.json_response({"code": 0, "message": message, **resources}, status=status)


def _number(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise invalid(f"Invalid value passed for {name}.")
    return int(text)


def paginate(
    request: web.Request, name: str, items: list[dict[str, Any]], *, page_context: bool = True
) -> web.Response:
    page = _number(request, "page", 1)
    per_page = min(_number(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
    start = (page - 1) * per_page
    resources: dict[str, Any] = {name: items[start : start + per_page]}
    if page_context:
        more = start + per_page < len(items)
        resources["page_context"] = {"page": page, "per_page": per_page, "has_more_page": more}
    return ok(resources)


def _day(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(f"Invalid value passed for {name}: use YYYY-MM-DD.") from None


class EventOrder(StrEnum):
    """The order ``GET /events`` lists in: not documented, so the simulator can do either."""

    NEWEST_FIRST = "newest_first"
    OLDEST_FIRST = "oldest_first"


@dataclass(frozen=True)
class EventListing:
    """How this simulated organisation lists its events.

    ``filters``: honour the guessed ``date_start`` / ``date_end`` (inclusive, on the event's
    day) and ``sort_order`` (``A`` oldest first, ``D`` newest first) as an optimisation a broker
    may name in its settings; off, they are ignored as undocumented parameters would be."""

    order: EventOrder = EventOrder.NEWEST_FIRST
    filters: bool = False


def event_detail(event: Event, history: History) -> dict[str, Any]:
    """An event as ``GET /events/{id}`` documents it: ``payload`` is the webhook body as a JSON
    string, ``webhooks`` each delivery's ``status`` (success, scheduled or failure)."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_time": event.payload.get("event_time"),
        "payload": event.body.decode(),
        "webhooks": history(event.event_id),
    }


def list_item(event: Event) -> dict[str, Any]:
    """An event as ``GET /events`` documents its items: no payload."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_time": event.payload.get("event_time"),
    }


def events(request: web.Request, log: list[Event], listing: EventListing) -> list[dict[str, Any]]:
    """The logged events as list items, in this organisation's order (or the asked one)."""
    newest_first = listing.order is EventOrder.NEWEST_FIRST
    start = end = None
    if listing.filters:
        start, end = _day(request, "date_start"), _day(request, "date_end")
        order = request.query.get("sort_order")
        if order not in (None, "A", "D"):
            raise invalid("Invalid value passed for sort_order: use A or D.")
        if order is not None:
            newest_first = order == "D"
    chosen: Iterable[Event] = reversed(log) if newest_first else log
    rows = []
    for event in chosen:
        day = date.fromisoformat(str(event.payload["event_time"])[:10])
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        rows.append(list_item(event))
    return rows


def subscriptions(
    request: web.Request, subs: Iterable[Subscription], today: date
) -> list[dict[str, Any]]:
    """List items (no plan object, as Zoho's list omits it), newest first, filtered."""
    query = request.query
    given = query.get("filter_by")
    if given is not None and given not in SUBSCRIPTION_FILTERS:
        raise invalid("Invalid value passed for filter_by.")
    wanted = SUBSCRIPTION_FILTERS[given] if given is not None else None
    rows = []
    for sub in reversed(list(subs)):
        if wanted is not None and not wanted(sub, today):
            continue
        if query.get("customer_id") not in (None, sub.customer.customer_id):
            continue
        if query.get("plan_code") not in (None, sub.plan.plan_code):
            continue
        if query.get("product_id") not in (None, sub.plan.product_id):
            continue
        rows.append(sub.summary_json())
    return rows
