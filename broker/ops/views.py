"""The console's read views: webhook events, deliveries with their attempts, parked
subscriptions, the audit log and one subscription's story. Everything shown passes through the
redactor first: stored rows may predate redaction, and a raw webhook body is as billing sent it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from aiohttp import web

from broker.core.ids import IdKind, checked_id, is_whole_number
from broker.errors import NotFound
from broker.ops.appkeys import ops_redactor_key
from broker.ops.support import check_state, operator_session, paged, read_filter, render
from broker.redaction import Redactor
from broker.store import delivery_records, generation, ops_reads, ops_story, org_reads
from broker.store.outbox import DeliveryState
from broker.store.refusals import refusal_counts
from broker.web.appkeys import daily_budget_key, refusals_key, settings_key, store_key


async def home(request: web.Request) -> web.Response:
    session = operator_session(request)
    summary = await request.app[store_key].read(
        lambda db: delivery_records.outbox_summary(db, now=0.0)
    )
    parked = await request.app[store_key].read(
        lambda db: ops_reads.parked(db, ops_reads.OpsFilter(page_size=1000))
    )
    conflicts = await request.app[store_key].read(org_reads.conflicts)
    store_generation = await request.app[store_key].read(generation.current)
    budget = (
        await request.app[daily_budget_key].figures() if daily_budget_key in request.app else None
    )
    billing = request.app[settings_key].billing
    return render(
        request,
        "ops_home.html",
        session,
        {
            "counts": summary.counts,
            "parked": len(parked.rows),
            "states": DeliveryState,
            "conflicts": conflicts,
            "generation": store_generation,
            "budget": budget,
            "background_stop_percent": billing.background_stop_percent if billing else None,
            "page_reads_stale_percent": billing.page_reads_stale_percent if billing else None,
            "quota_until_text": (
                datetime.fromtimestamp(budget.quota_until, UTC).strftime("%Y-%m-%d %H:%M UTC")
                if budget is not None and budget.quota_until is not None
                else None
            ),
        },
    )


async def events(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    refused = await _refused(request, where)
    return await paged(
        request, session, "ops_events.html", where, ops_reads.webhook_events, refused=refused
    )


async def _refused(request: web.Request, where: ops_reads.OpsFilter) -> list[tuple[str, int]]:
    """Refused requests by reason over the filter's days: stored, plus this process's unsaved."""
    first = _day(where.since)
    last = _day(where.until - 1e-3) if where.until is not None else None
    stored = await request.app[store_key].read(
        lambda db: refusal_counts(db, first_day=first, last_day=last)
    )
    totals = Counter(stored)
    if refusals_key in request.app:
        totals.update(request.app[refusals_key].pending(first, last))
    return sorted(totals.items())


def _day(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).date().isoformat()


async def event(request: web.Request) -> web.Response:
    session = operator_session(request)
    event_id = checked_id("event_id", request.match_info["event_id"], IdKind.OPAQUE)
    found = await request.app[store_key].read(lambda db: ops_reads.webhook_event(db, event_id))
    if found is None:
        raise NotFound(f"no webhook event {event_id}", hint="search the events list")
    return render(
        request,
        "ops_event.html",
        session,
        {"event": found, "body": _redacted_json(request, found.raw_body)},
    )


async def deliveries(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    states = [str(s) for s in DeliveryState]
    check_state(where, states, what="delivery state")
    return await paged(
        request,
        session,
        "ops_deliveries.html",
        where,
        ops_reads.deliveries,
        where=where,
        states=states,
    )


async def delivery(request: web.Request) -> web.Response:
    session = operator_session(request)
    delivery_id = _int(request.match_info["delivery_id"])
    store = request.app[store_key]
    found = await store.read(lambda db: delivery_records.get_delivery(db, delivery_id))
    if found is None:
        raise NotFound(f"no delivery {delivery_id}", hint="search the deliveries list")
    attempts = await store.read(lambda db: delivery_records.delivery_attempts(db, delivery_id))
    redact = request.app[ops_redactor_key]
    shown = [{**a.as_dict(), **_scrubbed(a, redact)} for a in attempts]
    return render(request, "ops_delivery.html", session, {"delivery": found, "attempts": shown})


def _scrubbed(attempt: delivery_records.AttemptRecord, redact: Redactor) -> dict[str, str | None]:
    return {
        "url": redact(attempt.url),
        "request_body": redact(attempt.request_body),
        "response_excerpt": redact(attempt.response_excerpt) if attempt.response_excerpt else None,
        "error": redact(attempt.error) if attempt.error else None,
    }


async def parked(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    return await paged(request, session, "ops_parked.html", where, ops_reads.parked)


async def unmapped(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    return await paged(request, session, "ops_unmapped.html", where, ops_reads.unmapped)


async def audit(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    return await paged(request, session, "ops_audit.html", where, ops_reads.audit_log)


async def story(request: web.Request) -> web.Response:
    session = operator_session(request)
    sid = checked_id("subscription_id", request.match_info["subscription_id"], IdKind.ZOHO)
    found = await request.app[store_key].read(lambda db: ops_story.subscription_story(db, sid))
    if found is None:
        raise NotFound(f"the broker knows nothing of subscription {sid}")
    redact = request.app[ops_redactor_key]
    return render(
        request,
        "ops_story.html",
        session,
        {
            "story": found,
            "snapshot": _redacted_json(request, found.snapshot) if found.snapshot else None,
            "entries": [(e, redact(e.detail)) for e in found.entries],
        },
    )


def _redacted_json(request: web.Request, text: str) -> str:
    """Indented when it is JSON, as received when not; secrets hidden either way."""
    try:
        text = json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        pass
    return request.app[ops_redactor_key](text)


def _int(text: str) -> int:
    if not is_whole_number(text):
        raise NotFound(f"no delivery {text[:40]!r}: delivery ids are whole numbers")
    return int(text)
