"""The console's replays: one stored event, or every event received in a time range (after a
confirmation page), fed through the pipeline again (``store.replay``). CSRF on every POST;
each event replayed is audited under the operator's name."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web

from broker.core.human_dates import parse_when
from broker.core.ids import IdKind, checked_id
from broker.errors import InvalidPayload, NotFound
from broker.ops.access import check_csrf
from broker.ops.support import operator, operator_session, render
from broker.store import replay
from broker.web.appkeys import clock_key, settings_key, store_key, worker_key

log = structlog.get_logger(__name__)


async def replay_one(request: web.Request) -> web.StreamResponse:
    session = operator_session(request)
    check_csrf(session, (await request.post()).get("csrf"))
    event_id = checked_id("event_id", request.match_info["event_id"], IdKind.OPAQUE)
    who = operator(request, session)
    settings, now = request.app[settings_key], request.app[clock_key]()
    try:
        result = await request.app[store_key].write(
            lambda db: replay.replay_event(db, who, event_id, settings=settings, now=now)
        )
    except LookupError as exc:
        raise NotFound(str(exc), hint="search the events list") from exc
    if result.queued:
        request.app[worker_key].wake()
    log.info("ops.replay", event_id=event_id, outcome=str(result.outcome))
    notice = f"replayed: {result.outcome}" + (f" ({result.reason})" if result.reason else "")
    raise web.HTTPSeeOther(f"/ops/events/{quote(event_id)}?" + urlencode({"notice": notice}))


async def replay_range(request: web.Request) -> web.StreamResponse:
    """GET or a first POST: the confirmation page. POST with ``confirm=yes``: replay them."""
    session = operator_session(request)
    form = await request.post() if request.method == "POST" else None
    values = form if form is not None else request.query
    since_text, until_text = str(values.get("since", "")), str(values.get("until", ""))
    since, until = _range(since_text, until_text)
    store = request.app[store_key]
    ids = await store.read(lambda db: replay.event_ids_between(db, since, until))
    if len(ids) > replay.MAX_RANGE:
        raise InvalidPayload(
            f"more than {replay.MAX_RANGE} events fall in this range",
            hint="narrow the range and replay it in parts",
        )
    context = {"since": since_text, "until": until_text, "ids": ids}
    if form is None or form.get("confirm") != "yes":
        if form is not None:
            check_csrf(session, form.get("csrf"))
        return render(request, "ops_replay.html", session, context)
    check_csrf(session, form.get("csrf"))
    who = operator(request, session)
    settings, now = request.app[settings_key], request.app[clock_key]()
    results = await store.write(
        lambda db: [
            replay.replay_event(db, who, event_id, settings=settings, now=now) for event_id in ids
        ]
    )
    if any(r.queued for r in results):
        request.app[worker_key].wake()
    outcomes = Counter(str(r.outcome) for r in results)
    log.info("ops.replay_range", events=len(ids), **outcomes)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    notice = f"replayed {len(ids)} events" + (f": {summary}" if summary else "")
    query = urlencode({"type": "ops.replay", "notice": notice})
    raise web.HTTPSeeOther(f"/ops/audit?{query}")


def _range(since: str, until: str) -> tuple[float, float]:
    problems = []
    bounds: list[float] = []
    for name, text, end in (("from", since, False), ("until", until, True)):
        try:
            bounds.append(parse_when(text, end_of_day=end))
        except ValueError as exc:
            problems.append(f"{name}: {exc}" if text.strip() else f"{name}: required")
    if not problems and bounds[0] >= bounds[1]:
        problems.append("from: must be before until")
    if problems:
        raise InvalidPayload(
            "a replay needs a time range",
            hint="set From and Until, then try again",
            problems=problems,
        )
    return bounds[0], bounds[1]
