"""The console's reconciliation: recorded runs (filtered by start and outcome, paged), one run's
drift, and "reconcile now" (a CSRF-checked POST that runs ``run_reconciliation`` with trigger
``console`` and is audited). Without a [billing] section the button is off and says why.
``/ops/missing`` lists the subscriptions billing answered 404 for; one waiting for an operator
(``reconcile.on_missing_in_billing = ask``) has a CSRF-checked, audited button that sends the
platform its Cancel through the pipeline."""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web

from broker.core.ids import is_whole_number, is_zoho_id
from broker.core.reconcile import MissingState
from broker.delivery.reconcile import RunOutcome, run_reconciliation
from broker.errors import ActionNotAllowed, NotFound
from broker.ops.access import check_csrf
from broker.ops.support import (
    check_state,
    operator,
    operator_session,
    paged,
    read_filter,
    render,
)
from broker.store import reconcile_missing, reconcile_reads
from broker.store.ops_actions import audit
from broker.web.appkeys import clock_key, reconcile_key, settings_key, store_key, worker_key

log = structlog.get_logger(__name__)
OFF_REASON = "reconciliation is off: the broker has no [billing] section to read billing from"


async def runs(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    outcomes = ["running", *RunOutcome]
    check_state(where, outcomes, what="run outcome")
    return await paged(
        request,
        session,
        "ops_reconcile.html",
        where,
        reconcile_reads.runs,
        off=None if reconcile_key in request.app else OFF_REASON,
        outcomes=outcomes,
    )


async def run(request: web.Request) -> web.Response:
    session = operator_session(request)
    text = request.match_info["run_id"]
    if not is_whole_number(text):
        raise NotFound(f"no run {text[:40]!r}: run ids are whole numbers")
    run_id = int(text)
    store = request.app[store_key]
    found = await store.read(lambda db: reconcile_reads.run(db, run_id))
    if found is None:
        raise NotFound(f"no reconciliation run {run_id}", hint="see the runs list")
    drift = await store.read(lambda db: reconcile_reads.drift(db, run_id))
    return render(request, "ops_run.html", session, {"run": found, "drift": drift})


async def reconcile_now(request: web.Request) -> web.StreamResponse:
    session = operator_session(request)
    check_csrf(session, (await request.post()).get("csrf"))
    if reconcile_key not in request.app:
        raise ActionNotAllowed(OFF_REASON, hint="configure [billing] to reconcile")
    report = await run_reconciliation(request.app[reconcile_key], trigger="console")
    who = operator(request, session)
    now = request.app[clock_key]()
    queued = sum(1 for d in report.drift if d.delivery_id is not None)
    detail: dict[str, object] = {
        "run_id": report.run_id,
        "drift": len(report.drift),
        "queued": queued,
    }
    if report.error:
        detail["error"] = report.error
    if report.stopped_early:
        detail["stopped_early"] = report.stopped_early
    await request.app[store_key].write(
        lambda db: audit(db, who, "ops.reconcile", str(report.outcome), now=now, detail=detail)
    )
    if queued:
        request.app[worker_key].wake()
    log.info("ops.reconcile", outcome=str(report.outcome), run_id=report.run_id)
    notice = _notice(report.outcome, len(report.drift), queued, report.error)
    if report.stopped_early:
        notice += f"; not everything was read: {report.stopped_early}"
    if report.run_id is None:
        raise web.HTTPSeeOther("/ops/reconcile?" + urlencode({"notice": notice}))
    raise web.HTTPSeeOther(f"/ops/reconcile/{report.run_id}?" + urlencode({"notice": notice}))


def _notice(outcome: RunOutcome, drift: int, queued: int, error: str | None) -> str:
    if outcome is RunOutcome.BUSY:
        return "busy: another run holds the lock; nothing was read. Try again when it ends."
    found = f"{drift} drift found, {queued} deliveries queued"
    if outcome is RunOutcome.DONE:
        return f"done: {found}"
    why = f" ({error})" if error else ""
    return f"{outcome}{why}: {found} before it stopped; the next run carries on"


async def missing(request: web.Request) -> web.Response:
    session = operator_session(request)
    found = await request.app[store_key].read(reconcile_missing.waiting)
    setting = request.app[settings_key].reconcile.on_missing_in_billing
    return render(
        request,
        "ops_missing.html",
        session,
        {"rows": found, "asked": MissingState.ASKED, "setting": setting.value},
    )


async def cancel_missing(request: web.Request) -> web.StreamResponse:
    """Send the platform the Cancel of one subscription billing answered 404 for, once."""
    session = operator_session(request)
    check_csrf(session, (await request.post()).get("csrf"))
    sid = request.match_info["subscription_id"]
    if not is_zoho_id(sid):
        raise NotFound(f"no subscription {sid[:40]!r}: subscription ids are digits")
    who = operator(request, session)
    now = request.app[clock_key]()
    settings = request.app[settings_key]
    try:
        result = await request.app[store_key].write(
            lambda db: reconcile_missing.operator_cancel(db, who, sid, settings=settings, now=now)
        )
    except reconcile_missing.MissingRefused as exc:
        log.warning("ops.cancel_missing_refused", subscription_id=sid, why=str(exc))
        raise ActionNotAllowed(str(exc), hint="reload the missing-in-billing list") from exc
    if result.queued:
        request.app[worker_key].wake()
    log.info("ops.cancel_missing_in_billing", subscription_id=sid, outcome=str(result.outcome))
    notice = (
        f"subscription {sid}: marked gone from billing; the platform's Cancel is {result.outcome}"
    )
    raise web.HTTPSeeOther("/ops/missing?" + urlencode({"notice": notice}))
