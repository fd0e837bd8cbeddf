"""The list endpoints' query parameters: pagination (``page``, ``per_page``, ``page_context``,
documented), and the filters of ``GET /events`` and ``GET /subscriptions``.

Documented [doc]: ``page``, ``per_page`` (at most 200), ``has_more_page``; ``customer_id`` and
the ``filter_by`` values of specs/subscription.yml on subscriptions (others are refused).
Guessed [unsure], so a broker must make its choice a setting: ``date_start`` / ``date_end``
(inclusive, on the event's ``event_time`` day) and ``sort_order`` (``A`` oldest first, ``D``
newest first, the default) on events; ``plan_code`` and ``product_id`` on subscriptions. Anything
malformed is a 400 with code 4 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
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


def paginate(request: web.Request, name: str, items: list[dict[str, Any]]) -> web.Response:
    page = _number(request, "page", 1)
    per_page = min(_number(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
    start = (page - 1) * per_page
    context = {"page": page, "per_page": per_page, "has_more_page": start + per_page < len(items)}
    return ok({name: items[start : start + per_page], "page_context": context})


def _day(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(f"Invalid value passed for {name}: use YYYY-MM-DD.") from None


def listed(event: Event, history: History) -> dict[str, Any]:
    """An event as the events API shows it: the webhook body's keys, and also the documented
    event object's ``payload`` (that body as a JSON string) and ``webhooks`` (each delivery's
    ``status``: success, scheduled or failure), so a reader may rely on either shape."""
    return event.payload | {"payload": event.body.decode(), "webhooks": history(event.event_id)}


def events(request: web.Request, log: list[Event], history: History) -> list[dict[str, Any]]:
    """The logged events the query asks for, in the asked order."""
    wanted = request.query.get("event_type")
    start, end = _day(request, "date_start"), _day(request, "date_end")
    order = request.query.get("sort_order", "D")
    if order not in ("A", "D"):
        raise invalid("Invalid value passed for sort_order: use A or D.")
    chosen: Iterable[Event] = log if order == "A" else reversed(log)
    rows = []
    for event in chosen:
        day = date.fromisoformat(event.payload["event_time"])
        if wanted not in (None, event.event_type):
            continue
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        rows.append(listed(event, history))
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
