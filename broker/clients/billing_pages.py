"""Reading one of Zoho Billing's lists page by page, and knowing when it has ended.

``page`` and ``per_page`` are documented, and ``page_context.has_more_page`` answers whether
another page follows, but only for invoices (specs/invoices.yml); the events list documents no
``page_context`` at all (specs/events.yml). So ``has_more_page`` is followed where it is given,
and where it is absent a full page means there may be more. A bound on pages stops a list that
never ends; stopping there is logged and shown on the last page (``more`` still true), never
silent.

One row that cannot be read never costs the rest of the list: a row that is not an object is
skipped here, and one that does not read as its model is skipped by the reader, each with a
``billing.list_row_skipped`` warning naming the list, the row, its id when readable, and the
problem (never the row's values).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Protocol

import structlog

from broker.errors import BillingAnswerInvalid

log = structlog.get_logger(__name__)
MAX_PER_PAGE = 200  # Zoho's largest page


class Request(Protocol):
    """``BillingClient.request`` as a list reads it: one GET with query parameters."""

    def __call__(
        self, method: str, path: str, *, params: dict[str, str] | None = None
    ) -> Awaitable[dict[str, object]]: ...


# The key that names a row of each list, for the warning when a row is skipped.
ROW_ID_KEYS = {
    "plans": "plan_code",
    "addons": "addon_code",
    "subscriptions": "subscription_id",
    "customers": "customer_id",
    "events": "event_id",
}
MAX_LOGGED_ID_CHARS = 100


@dataclass(frozen=True)
class ListPage:
    number: int
    items: list[dict[str, object]]  # the rows that are objects, in billing's order
    more: bool  # billing has more: on the last page read, the list was cut short
    positions: list[int]  # each item's row in the list (0-based, across pages)


def row_id(resource: str, row: object) -> str | None:
    """The id a list row names itself by, when it reads as one (a string or an integer of
    printable characters, bounded): the row's other values are never logged."""
    key = ROW_ID_KEYS.get(resource)
    value = row.get(key) if key is not None and isinstance(row, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)[:MAX_LOGGED_ID_CHARS]
    if isinstance(value, str) and value.isprintable() and value.strip():
        return value.strip()[:MAX_LOGGED_ID_CHARS]
    return None


def skip_row(resource: str, index: int, row: object, problems: list[str]) -> None:
    """Log the row of ``resource`` at ``index`` (0-based, across pages) as skipped."""
    log.warning(
        "billing.list_row_skipped",
        list=resource,
        row=index,
        id=row_id(resource, row),
        problems=problems,
    )


def has_more(body: dict[str, object], count: int, per_page: int) -> bool:
    """``page_context.has_more_page`` when billing says it; else whether the page was full."""
    context = body.get("page_context")
    if isinstance(context, dict) and isinstance(context.get("has_more_page"), bool):
        return bool(context["has_more_page"])
    return count >= per_page


async def list_pages(
    request: Request,
    path: str,
    resource: str,
    params: dict[str, str],
    *,
    per_page: int = MAX_PER_PAGE,
    max_pages: int,
    strict: bool = False,
) -> AsyncIterator[ListPage]:
    """Each page of the list in turn, up to ``max_pages``. A row that is not an object is
    skipped with a warning, or with ``strict`` refuses the list (``BillingAnswerInvalid``)."""
    read = seen = 0
    for number in range(1, max_pages + 1):
        body = await request(
            "GET", path, params={**params, "page": str(number), "per_page": str(per_page)}
        )
        listed = body.get(resource)
        rows: list[object] = listed if isinstance(listed, list) else []
        items: list[dict[str, object]] = []
        positions: list[int] = []
        for index, row in enumerate(rows, start=seen):
            if isinstance(row, dict):
                items.append(row)
                positions.append(index)
            elif strict:
                raise BillingAnswerInvalid(
                    f"Zoho Billing listed {resource}[{index}] as a {type(row).__name__}, "
                    "not an object",
                    problems=[f"{resource}[{index}]: not an object"],
                )
            else:
                skip_row(resource, index, row, [f"{resource}[{index}]: not an object"])
        seen += len(rows)
        read += len(items)
        more = has_more(body, len(rows), per_page)
        if more and number == max_pages:
            log.warning("billing.list_cut_short", path=path, pages=number, items=read)
        yield ListPage(number, items, more, positions)
        if not more:
            return


async def read_list(
    request: Request,
    path: str,
    resource: str,
    params: dict[str, str],
    *,
    max_pages: int,
    strict: bool = False,
) -> list[tuple[int, dict[str, object]]]:
    """Every row of a list that is an object, with its position in the list (up to the page
    bound, logged when reached); the caller reads each into its model."""
    items: list[tuple[int, dict[str, object]]] = []
    pages = list_pages(request, path, resource, params, max_pages=max_pages, strict=strict)
    async for page in pages:
        items.extend(zip(page.positions, page.items, strict=True))
    return items
