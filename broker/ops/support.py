"""What every console handler shares: the signed-in operator, filters read from the query,
rendering with the operator's CSRF token, and running a store write as an audited action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TypeVar
from urllib.parse import urlencode

import aiohttp_jinja2
import structlog
from aiohttp import web

from broker.core.human_dates import parse_when, show_when
from broker.core.ids import is_whole_number
from broker.errors import InvalidPayload
from broker.ops.access import COOKIE_NAME, COOKIE_PATH, OpsSession, credential_of, session_key
from broker.ops.appkeys import ops_codec_key, ops_session_key
from broker.store import ops_sessions
from broker.store.engine.tx import Tx
from broker.store.ops_actions import Operator
from broker.store.ops_reads import OpsFilter, Page
from broker.web.appkeys import clock_key, request_id_key, settings_key, store_key

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Row = TypeVar("Row")  # the record one page of the console shows
FILTER_FIELDS = ("state", "subscription", "org", "type", "since", "until")


def operator_session(request: web.Request) -> OpsSession:
    """The signed-in operator (found live by ``live_session``), else a redirect to sign in."""
    session: OpsSession | None = request.get(ops_session_key)
    if session is None:
        raise web.HTTPSeeOther("/ops/login")
    return session


@web.middleware
async def live_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A console cookie counts only while its server-side session is live: one store read per
    console request carrying it, so handlers can ask ``operator_session`` without awaiting."""
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie and request.path.startswith(COOKIE_PATH):
        session = request.app[ops_codec_key].loads(cookie)
        if session is not None:
            key, credential = session_key(session), credential_of(request.app[settings_key])
            now = request.app[clock_key]()
            live = await request.app[store_key].read(
                lambda db: ops_sessions.session_is_live(db, key, credential=credential, now=now)
            )
            if live:
                request[ops_session_key] = session
            else:
                log.info("ops.session_refused", reason="ended_or_other_password")
    return await handler(request)


def operator(request: web.Request, session: OpsSession) -> Operator:
    return Operator(session.operator, request.get(request_id_key))


def read_filter(request: web.Request) -> OpsFilter:
    """The query's filters; a malformed one is a 400 that says which and how to write it."""
    query = request.query
    problems: list[str] = []

    def text(name: str) -> str | None:
        value = query.get(name, "").strip()
        if len(value) > 200:
            problems.append(f"{name}: at most 200 characters")
            return None
        return value or None

    def when(name: str, *, end_of_day: bool) -> float | None:
        value = text(name)
        if value is None:
            return None
        try:
            return parse_when(value, end_of_day=end_of_day)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return None

    page_text = query.get("page", "1")
    page = (
        int(page_text)
        if is_whole_number(page_text, max_digits=6) and 0 < int(page_text) < 1_000_000
        else 0
    )
    if not page:
        problems.append("page: a whole number from 1")
    where = OpsFilter(
        state=text("state"),
        subscription_id=text("subscription"),
        zgid=text("org"),
        event_type=text("type"),
        since=when("since", end_of_day=False),
        until=when("until", end_of_day=True),
        page=page or 1,
        page_size=request.app[settings_key].ops.page_size,
    )
    if problems:
        raise InvalidPayload(
            "a filter could not be read", hint="correct it and search again", problems=problems
        )
    return where


def page_links(request: web.Request, where: OpsFilter, has_next: bool) -> dict[str, str | None]:
    """Links to the previous and next page, keeping the filters."""
    kept = {k: v for k, v in request.query.items() if k in FILTER_FIELDS and v}

    def link(page: int) -> str:
        return f"{request.path}?{urlencode({**kept, 'page': page})}"

    return {
        "previous": link(where.page - 1) if where.page > 1 else None,
        "next": link(where.page + 1) if has_next else None,
    }


def render(
    request: web.Request,
    template: str,
    session: OpsSession | None,
    context: Mapping[str, object],
    *,
    status: int = 200,
) -> web.Response:
    values = {
        "ops": session,
        "when": show_when,
        "query": request.query,
        "query_string": request.query_string,
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, values, status=status)


def check_state(where: OpsFilter, allowed: Collection[str], *, what: str) -> None:
    """A state filter must name one of ``allowed``: a 400 that lists them, not an empty page."""
    if where.state and where.state not in allowed:
        raise InvalidPayload(
            f"unknown {what} {where.state!r}", hint="choose one of: " + ", ".join(allowed)
        )


async def paged(
    request: web.Request,
    session: OpsSession,
    template: str,
    where: OpsFilter,
    read: Callable[[Tx, OpsFilter], Page[Row]],
    /,
    **context: object,
) -> web.Response:
    """One filtered page read from the store, shown with links to its neighbours (positional
    parameters, so a template may still receive ``where`` in ``context``)."""
    found = await request.app[store_key].read(lambda db: read(db, where))
    links = page_links(request, where, found.has_next)
    return render(request, template, session, {"page": found, "links": links, **context})
