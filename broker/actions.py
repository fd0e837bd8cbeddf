"""What a customer can do on the Manage Subscription page, each through the billing API.

Every action checks the session's CSRF token and the viewer's right to act, is written to the
audit log with its result, and feeds what billing answers into the same state pipeline as a
webhook, so the Developer Console is updated without waiting for the webhook (which then changes
nothing). A billing failure shows the form again with everything the user chose.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import structlog
from aiohttp import web

from .appkeys import (
    billing_client_key,
    catalog_key,
    clock_key,
    request_id_key,
    settings_key,
    store_key,
    worker_key,
)
from .audit import record_action
from .catalog import Catalog
from .checkouts import checkout_row, open_checkout
from .errors import BillingError, BillingRejected, ClientError, Forbidden
from .forms import FREQUENCIES, FormResult, parse_pause_form, parse_plan_form
from .pages import outcome, remember, render
from .pause_credit import pause_credit
from .pipeline import ingest_billing_read
from .sessions import Session, check_csrf
from .viewer import Viewer, load_viewer

log = structlog.get_logger(__name__)

FREQUENCY_NAMES = {code: name for name, code in FREQUENCIES.items()}


# -- subscribe and change ---------------------------------------------------------------------


async def subscribe_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    if not viewer.can_subscribe:
        raise ClientError(
            "your organisation already has a running subscription",
            hint="change it from the subscription page instead",
        )
    values = await _resumed_form(request, viewer) or {
        "frequency": "monthly",
        "users": "1",
        "storage": "0",
    }
    return await _plan_page(request, viewer, "subscribe", FormResult(values))


async def change_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    current = viewer.require_manage()
    values = await _resumed_form(request, viewer) or {
        "planid": current["planid"] or "",
        "frequency": FREQUENCY_NAMES.get(current["frequency"] or "", "monthly"),
        "users": str(current["users"] or 1),
        "storage": str(current["storage_units"] or 0),
    }
    return await _plan_page(request, viewer, "change", FormResult(values))


async def subscribe(request: web.Request) -> web.StreamResponse:
    viewer, form = await _posted(request)
    if not viewer.can_subscribe:
        raise ClientError(
            "your organisation already has a running subscription",
            hint="change it from the subscription page instead",
        )
    catalog = await _catalog(request, viewer, "subscribe", form)
    if isinstance(catalog, web.Response):
        return catalog
    parsed = parse_plan_form(form, catalog)
    if not parsed.ok:
        return await _plan_page(request, viewer, "subscribe", parsed, status=422)
    choice = parsed.cleaned
    session = viewer.session
    payload: dict[str, Any] = {
        "plan": {"plan_code": choice["plan_code"], "quantity": choice["users"]},
        "addons": _storage_addons(choice),
        "redirect_url": _return_url(request),
    }
    known_customer = next(
        (s["customer_id"] for s in viewer.subscriptions if s["customer_id"]), None
    )
    if known_customer:
        payload["customer_id"] = known_customer
    else:
        payload["customer"] = _new_customer(session)
    return await _checkout(request, viewer, "subscribe", None, payload, parsed)


async def change(request: web.Request) -> web.StreamResponse:
    viewer, form = await _posted(request)
    current = await _manageable(request, viewer)
    catalog = await _catalog(request, viewer, "change", form)
    if isinstance(catalog, web.Response):
        return catalog
    parsed = parse_plan_form(form, catalog)
    if not parsed.ok:
        return await _plan_page(request, viewer, "change", parsed, status=422)
    choice = parsed.cleaned
    subscription_id = current["subscription_id"]
    plan_and_addons = {
        "plan": {"plan_code": choice["plan_code"], "quantity": choice["users"]},
        "addons": _storage_addons(choice),
    }
    new_total = catalog.total(
        choice["planid"], choice["frequency"], choice["users"], choice["storage"]
    )
    old_total = (
        catalog.total(
            current["planid"],
            current["frequency"],
            current["users"] or 0,
            current["storage_units"] or 0,
        )
        if current["planid"] and current["frequency"]
        else None
    )
    if new_total is not None and old_total is not None and new_total <= old_total:
        # Nothing more to pay: billing applies it directly (with any credit it owes).
        return await _direct(
            request,
            viewer,
            "change",
            subscription_id,
            lambda client: client.update_subscription(
                subscription_id, {**plan_and_addons, "end_of_term": False}
            ),
            notice="Your subscription was changed.",
            form=parsed,
        )
    payload = {
        "subscription_id": subscription_id,
        **plan_and_addons,
        "redirect_url": _return_url(request),
    }
    return await _checkout(request, viewer, "change", subscription_id, payload, parsed)


async def _plan_page(
    request: web.Request,
    viewer: Viewer,
    action: str,
    form: FormResult,
    *,
    status: int = 200,
    problem: str | None = None,
) -> web.Response:
    catalog: Catalog | None = None
    try:
        catalog = await request.app[catalog_key].get()
    except BillingError as error:
        problem = problem or f"{error.message}. The plans cannot be shown; try again in a minute."
        status = error.status
    return render(
        request,
        "plan_form.html",
        {
            "viewer": viewer,
            "action": action,
            "form": form,
            "catalog": catalog,
            "problem": problem,
            "frequency_names": FREQUENCY_NAMES,
        },
        status=status,
    )


async def _resumed_form(request: web.Request, viewer: Viewer) -> dict[str, str] | None:
    """The choices of an unfinished checkout, so 'try again' loses nothing."""
    hostedpage_id = request.query.get("resume", "")
    if not hostedpage_id:
        return None
    row = await request.app[store_key].read(partial(checkout_row, hostedpage_id=hostedpage_id))
    if row is None or row["zgid"] != viewer.session.zgid:
        return None
    values: dict[str, str] = json.loads(row["form_json"])
    return values


async def _checkout(
    request: web.Request,
    viewer: Viewer,
    action: str,
    subscription_id: str | None,
    payload: dict[str, Any],
    form: FormResult,
) -> web.StreamResponse:
    app = request.app
    client = app[billing_client_key]
    try:
        page = await (
            client.new_subscription_page(payload)
            if action == "subscribe"
            else client.update_subscription_page(payload)
        )
    except BillingError as error:
        await _audit(
            request, viewer.session, action, subscription_id, f"failed: {error.code}", form.cleaned
        )
        return await _plan_page(
            request, viewer, action, form, status=error.status, problem=_billing_problem(error)
        )
    hostedpage_id, url = str(page.get("hostedpage_id", "")), str(page.get("url", ""))
    if not hostedpage_id or not url.startswith(("https://", "http://")):
        log.error("billing.hosted_page_unusable", action=action)
        return await _plan_page(
            request,
            viewer,
            action,
            form,
            status=502,
            problem="Billing did not open a checkout page. Nothing was "
            "changed; try again in a minute.",
        )
    now = app[clock_key]()
    session = viewer.session
    await app[store_key].write(
        partial(
            _open_checkout_and_audit,
            hostedpage_id=hostedpage_id,
            session=session,
            action=action,
            subscription_id=subscription_id,
            form=form.values,
            now=now,
            request_id=request.get(request_id_key),
            detail=form.cleaned,
        )
    )
    return web.Response(status=303, headers={"Location": url})


def _open_checkout_and_audit(
    db: Any,
    *,
    hostedpage_id: str,
    session: Session,
    action: str,
    subscription_id: str | None,
    form: dict[str, str],
    now: float,
    request_id: str | None,
    detail: dict[str, Any],
) -> None:
    open_checkout(
        db,
        hostedpage_id=hostedpage_id,
        zgid=session.zgid,
        zuid=session.zuid,
        action=action,
        subscription_id=subscription_id,
        form=form,
        now=now,
    )
    record_action(
        db,
        at=now,
        zuid=session.zuid,
        zgid=session.zgid,
        action=action,
        subscription_id=subscription_id,
        result="sent to checkout",
        detail={**detail, "hostedpage_id": hostedpage_id},
        request_id=request_id,
    )


# -- cancel, reactivate, pause, resume --------------------------------------------------------


async def cancel_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    current = viewer.require_manage()
    return render(request, "cancel.html", {"viewer": viewer, "current": current})


async def cancel(request: web.Request) -> web.StreamResponse:
    viewer, form = await _posted(request)
    current = await _manageable(request, viewer)
    when = str(form.get("when", "term_end"))
    if when not in ("term_end", "now") or form.get("confirm") != "yes":
        return render(
            request,
            "cancel.html",
            {
                "viewer": viewer,
                "current": current,
                "problem": "Tick the box to confirm, then choose when the subscription ends.",
            },
            status=422,
        )
    subscription_id = current["subscription_id"]
    at_end = when == "term_end"
    return await _direct(
        request,
        viewer,
        f"cancel_{when}",
        subscription_id,
        lambda client: client.cancel_subscription(subscription_id, at_term_end=at_end),
        notice=(
            "Your subscription will end on "
            + (current["term_ends_at"] or "the term end")
            + ". You can reactivate it until then."
        )
        if at_end
        else "Your subscription was cancelled.",
    )


async def reactivate(request: web.Request) -> web.StreamResponse:
    viewer, _ = await _posted(request)
    current = viewer.current
    if current is None or current["status"] not in ("cancelled", "non_renewing"):
        raise ClientError("only a cancelled subscription can be reactivated")
    if not viewer.can_manage:
        await _manageable(request, viewer)
    subscription_id = current["subscription_id"]
    return await _direct(
        request,
        viewer,
        "reactivate",
        subscription_id,
        lambda client: client.reactivate_subscription(subscription_id),
        notice="Your subscription is active again.",
    )


async def pause_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    current = viewer.require_manage()
    form = (
        parse_pause_form(request.query, today=_today(request))
        if "resume_on" in request.query
        else FormResult({"resume_on": ""})
    )
    return render(
        request,
        "pause.html",
        {
            "viewer": viewer,
            "current": current,
            "form": form,
            "preview": _preview(request, current, form),
        },
        status=200 if form.ok else 422,
    )


async def pause(request: web.Request) -> web.StreamResponse:
    viewer, posted = await _posted(request)
    current = await _manageable(request, viewer)
    if current["status"] != "live":
        raise ClientError("only a live subscription can be paused")
    form = parse_pause_form(posted, today=_today(request))
    if not form.ok:
        return render(
            request,
            "pause.html",
            {"viewer": viewer, "current": current, "form": form, "preview": None},
            status=422,
        )
    subscription_id = current["subscription_id"]
    body = {
        "pause_date": _today(request).isoformat(),
        "resume_date": form.cleaned["resume_on"].isoformat(),
    }
    return await _direct(
        request,
        viewer,
        "pause",
        subscription_id,
        lambda client: client.pause_subscription(subscription_id, body),
        notice=f"Your subscription is paused until {body['resume_date']}.",
    )


async def resume(request: web.Request) -> web.StreamResponse:
    viewer, _ = await _posted(request)
    current = viewer.current
    if current is None or current["status"] != "paused":
        raise ClientError("only a paused subscription can be resumed")
    if not viewer.can_manage:
        await _manageable(request, viewer)
    subscription_id = current["subscription_id"]
    return await _direct(
        request,
        viewer,
        "resume",
        subscription_id,
        lambda client: client.resume_subscription(subscription_id),
        notice="Your subscription is running again.",
    )


def _preview(
    request: web.Request, current: dict[str, Any], form: FormResult
) -> dict[str, Any] | None:
    if not form.ok or not form.cleaned or current["amount"] is None:
        return None
    try:
        term_start = date.fromisoformat(str(current["term_starts_at"]))
        term_end = date.fromisoformat(str(current["term_ends_at"]))
    except ValueError:
        return None
    credit = pause_credit(
        price=Decimal(str(current["amount"])),
        term_start=term_start,
        term_end=term_end,
        pause_start=_today(request),
        resume_on=form.cleaned["resume_on"],
    )
    return {"credit": credit, "currency": current["currency_code"] or ""}


def _today(request: web.Request) -> date:
    return datetime.fromtimestamp(request.app[clock_key](), UTC).date()


# -- shared plumbing --------------------------------------------------------------------------


async def _posted(request: web.Request) -> tuple[Viewer, dict[str, Any]]:
    viewer = await load_viewer(request, refresh=False)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    try:
        check_csrf(viewer.session, form.get("csrf_token"))
    except Forbidden:
        await _audit(request, viewer.session, _action_of(request), None, "refused: csrf", None)
        raise
    return viewer, form


def _action_of(request: web.Request) -> str:
    return request.path.rsplit("/", 1)[-1]


async def _manageable(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    """The subscription this viewer may change; a refusal is audited before it is raised."""
    try:
        return viewer.require_manage()
    except ClientError as refusal:
        current = viewer.current
        await _audit(
            request,
            viewer.session,
            _action_of(request),
            current["subscription_id"] if current else None,
            f"refused: {refusal.code}",
            None,
        )
        raise


async def _catalog(
    request: web.Request, viewer: Viewer, action: str, form: dict[str, Any]
) -> Catalog | web.Response:
    try:
        return await request.app[catalog_key].get()
    except BillingError as error:
        values = FormResult(
            {k: str(form.get(k, "")) for k in ("planid", "frequency", "users", "storage")}
        )
        current = viewer.current if action == "change" else None
        await _audit(
            request,
            viewer.session,
            action,
            current["subscription_id"] if current else None,
            f"failed: {error.code}",
            dict(values.values),
        )
        return await _plan_page(
            request, viewer, action, values, status=error.status, problem=_billing_problem(error)
        )


async def _direct(
    request: web.Request,
    viewer: Viewer,
    action: str,
    subscription_id: str,
    call: Any,
    *,
    notice: str,
    form: FormResult | None = None,
) -> web.StreamResponse:
    """Call billing, feed its answer to the pipeline, audit, and go back to the overview."""
    app = request.app
    client = app[billing_client_key]
    try:
        document = await call(client)
        if not document.get("subscription_id"):
            document = await client.get_subscription(subscription_id)
    except BillingError as error:
        await _audit(
            request,
            viewer.session,
            action,
            subscription_id,
            f"failed: {error.code}",
            form.cleaned if form else None,
        )
        if form is not None:
            return await _plan_page(
                request,
                viewer,
                "change",
                form,
                status=error.status,
                problem=_billing_problem(error),
            )
        return outcome(
            request,
            viewer.session,
            status=error.status,
            title="Billing did not make the change",
            text=_billing_problem(error),
            retry_url="/manage",
        )
    now = app[clock_key]()
    session = viewer.session
    queued = await app[store_key].write(
        partial(
            _apply_and_audit,
            document=document,
            settings=app[settings_key],
            now=now,
            session=session,
            action=action,
            subscription_id=subscription_id,
            request_id=request.get(request_id_key),
            detail=form.cleaned if form else None,
        )
    )
    if queued:
        app[worker_key].wake()
    response = web.Response(status=303, headers={"Location": "/manage"})
    remember(request, response, session.with_notice(notice))
    return response


def _apply_and_audit(
    db: Any,
    *,
    document: dict[str, Any],
    settings: Any,
    now: float,
    session: Session,
    action: str,
    subscription_id: str,
    request_id: str | None,
    detail: dict[str, Any] | None,
) -> bool:
    result = ingest_billing_read(db, document, source=f"page:{action}", settings=settings, now=now)
    record_action(
        db,
        at=now,
        zuid=session.zuid,
        zgid=session.zgid,
        action=action,
        subscription_id=subscription_id,
        result="ok",
        detail=detail,
        request_id=request_id,
    )
    return result.queued


async def _audit(
    request: web.Request,
    session: Session,
    action: str,
    subscription_id: str | None,
    result: str,
    detail: dict[str, Any] | None,
) -> None:
    await request.app[store_key].write(
        partial(
            record_action,
            at=request.app[clock_key](),
            zuid=session.zuid,
            zgid=session.zgid,
            action=action,
            subscription_id=subscription_id,
            result=result,
            detail=detail,
            request_id=request.get(request_id_key),
        )
    )


def _billing_problem(error: BillingError) -> str:
    message = error.message.rstrip(".")
    if isinstance(error, BillingRejected):
        return f"Billing refused the change: {message}. Nothing was changed."
    return f"{message}. Nothing was changed and your choices are kept; try again in a minute."


def _storage_addons(choice: dict[str, Any]) -> list[dict[str, Any]]:
    if choice["storage"] and choice["storage_code"]:
        return [{"addon_code": choice["storage_code"], "quantity": choice["storage"]}]
    return []


def _new_customer(session: Session) -> dict[str, Any]:
    """The billing customer, carrying cf_zuid / cf_zgid so every later webhook has both."""
    first, _, last = session.name.partition(" ")
    return {
        "display_name": session.company or session.name,
        "company_name": session.company or "",
        "first_name": first,
        "last_name": last,
        "email": session.email or "",
        "custom_fields": [
            {"label": "zuid", "api_name": "cf_zuid", "value": session.zuid},
            {"label": "zgid", "api_name": "cf_zgid", "value": session.zgid},
        ],
    }


def _return_url(request: web.Request) -> str:
    public = request.app[settings_key].landing.public_url
    base = public or f"{request.scheme}://{request.host}"
    return f"{base}/manage/return"
