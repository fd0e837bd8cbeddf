"""Reading one of Zoho Billing's lists page by page, and knowing when it has ended.

``page`` and ``per_page`` are documented, and ``page_context.has_more_page`` answers whether
another page follows, but only for invoices (specs/invoices.yml); the events list documents no
``page_context`` at all (specs/events.yml). So ``has_more_page`` is followed where it is given,
and where it is absent a full page means there may be more. A bound on pages stops a list that
never ends; stopping there is logged and shown on the last page (``more`` still true), never
silent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)
MAX_PER_PAGE = 200  # Zoho's largest page


class Request(Protocol):
    """``BillingClient.request`` as a list reads it: one GET with query parameters."""

    def __call__(
        self, method: str, path: str, *, params: dict[str, str] | None = None
    ) -> Awaitable[dict[str, object]]: ...


@dataclass(frozen=True)
class ListPage:
    number: int
    rows: list[object]  # as billing listed them: each should be an object
    more: bool  # billing has more: on the last page read, the list was cut short

    @property
    def items(self) -> list[dict[str, object]]:
        """The rows that are objects (a reader that skips the others)."""
        return [row for row in self.rows if isinstance(row, dict)]


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
) -> AsyncIterator[ListPage]:
    """Each page of the list in turn, up to ``max_pages``."""
    read = 0
    for number in range(1, max_pages + 1):
        body = await request(
            "GET", path, params={**params, "page": str(number), "per_page": str(per_page)}
        )
        listed = body.get(resource)
        rows: list[object] = listed if isinstance(listed, list) else []
        page = ListPage(number, rows, has_more(body, len(rows), per_page))
        read += len(page.items)
        if page.more and number == max_pages:
            log.warning("billing.list_cut_short", path=path, pages=number, items=read)
        yield page
        if not page.more:
            return


async def read_list(
    request: Request,
    path: str,
    resource: str,
    params: dict[str, str],
    *,
    max_pages: int,
) -> list[object]:
    """Every row of a list as billing sent it (up to the page bound, logged when reached): the
    caller reads each into its model, so a row that is not an object is an error, not skipped."""
    rows: list[object] = []
    async for page in list_pages(request, path, resource, params, max_pages=max_pages):
        rows.extend(page.rows)
    return rows
