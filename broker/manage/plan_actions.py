"""Choosing a plan on the Manage Subscription page: subscribing, and the plan form and hosted
checkout that changing the plan (``plan_change``) shares.

Both show the plan form from the billing catalog and mostly end on billing's hosted checkout,
whose choices are kept (``checkouts``) so the return from it, or a 'try again', loses nothing. A
new subscription carries zuid / zgid in its own ``custom_fields`` (the hosted page request's
documented place), so every later webhook names both; the paid return puts them on the customer
too. A billing failure shows the form again with everything the user chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import structlog
from aiohttp import web

from broker.core.billing_requests import NewSubscriptionPage, UpdateSubscriptionPage
from broker.core.catalog import Catalog
from broker.core.correlation import Correlation
from broker.core.forms import FREQUENCIES, ChosenPlan, FormResult, parse_plan_form, plan_values
from broker.core.policy import Action
from broker.errors import BillingError
from broker.manage.action_support import (
    ActionAudit,
    audit_action,
    billing_problem,
    over_budget,
    posted_form,
    require_action,
    require_billing_asked,
    with_retry_after,
)
from broker.manage.first_purchase import require_proven_new_org
from broker.manage.pages import render
from broker.manage.sessions import Session
from broker.manage.viewer import Viewer, load_viewer
from broker.store.checkouts import checkout_row, open_checkout
from broker.store.engine.tx import Tx
from broker.web.appkeys import billing_client_key, catalog_key, settings_key, store_key

log = structlog.get_logger(__name__)

FREQUENCY_NAMES = {code: name for name, code in FREQUENCIES.items()}


async def subscribe_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request)
    await require_billing_asked(request, viewer)
    await require_action(request, viewer, Action.SUBSCRIBE)
    await require_proven_new_org(request, viewer.session)
    values = await resumed_form(request, viewer) or {
        "frequency": "monthly",
        "users": "1",
        "storage": "0",
    }
    return await plan_page(request, viewer, Action.SUBSCRIBE, FormResult[ChosenPlan](values))


async def subscribe(request: web.Request) -> web.StreamResponse:
    _, form = await posted_form(request)
    # Look before selling, again: the org may have bought since the form was shown.
    viewer = await load_viewer(request)
    if not viewer.billing_checked and viewer.billing_enabled:
        return await _not_asked(request, viewer, form)
    await require_action(request, viewer, Action.SUBSCRIBE)
    await require_proven_new_org(request, viewer.session)
    checked = await checked_choice(request, viewer, Action.SUBSCRIBE, form)
    if isinstance(checked, web.Response):
        return checked
    _, parsed, choice = checked
    session = viewer.session
    payload: dict[str, object] = {
        **plan_and_addons(choice),
        "custom_fields": Correlation(zuid=session.zuid, zgid=session.zgid).custom_fields(),
        "redirect_url": return_url(request),
    }
    # An org with a billing customer keeps it: a second customer would hide the first's
    # subscriptions from the next look-up.
    if viewer.customer_id:
        payload["customer_id"] = viewer.customer_id
    else:
        payload["customer"] = _new_customer(session)
    return await open_hosted_checkout(
        request, viewer, Action.SUBSCRIBE, None, payload, parsed, choice
    )


async def _not_asked(request: web.Request, viewer: Viewer, form: Mapping[str, str]) -> web.Response:
    """Fail closed: billing could not say which subscriptions the org has, so no checkout
    starts; the form comes back with the choices and says so (503, audited)."""
    values = FormResult[ChosenPlan](plan_values(form))
    await audit_action(
        request, viewer.session, Action.SUBSCRIBE, None, "refused: billing_not_asked", values.values
    )
    log.warning("manage.subscribe_billing_not_asked", zgid=viewer.session.zgid)
    problem = (
        "Billing could not be asked which subscriptions your organisation already has, so no "
        "new subscription was started and nothing was charged. Try again in a minute."
    )
    return await plan_page(request, viewer, Action.SUBSCRIBE, values, status=503, problem=problem)


async def plan_page(
    request: web.Request,
    viewer: Viewer,
    action: Action,
    form: FormResult[ChosenPlan],
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


async def resumed_form(request: web.Request, viewer: Viewer) -> dict[str, str] | None:
    """The choices of an unfinished checkout, so 'try again' loses nothing."""
    hostedpage_id = request.query.get("resume", "")
    if not hostedpage_id:
        return None
    row = await request.app[store_key].read(partial(checkout_row, hostedpage_id=hostedpage_id))
    if row is None or row.zgid != viewer.session.zgid:
        return None
    return row.form


async def checked_choice(
    request: web.Request, viewer: Viewer, action: Action, form: Mapping[str, str]
) -> tuple[Catalog, FormResult[ChosenPlan], ChosenPlan] | web.Response:
    """The plans on sale, the posted form and the choice it makes, checked against them; or the
    form page again, saying why: the choice does not check out, or billing cannot list the plans
    (audited)."""
    try:
        catalog = await request.app[catalog_key].get()
    except BillingError as error:
        values = FormResult[ChosenPlan](plan_values(form))
        current = viewer.current if action is Action.CHANGE else None
        await audit_action(
            request,
            viewer.session,
            action,
            current.subscription_id if current else None,
            f"failed: {error.code}",
            dict(values.values),
        )
        return with_retry_after(
            await plan_page(
                request, viewer, action, values, status=error.status, problem=billing_problem(error)
            ),
            error,
        )
    parsed = parse_plan_form(form, catalog)
    if parsed.cleaned is None:
        return await plan_page(request, viewer, action, parsed, status=422)
    return catalog, parsed, parsed.cleaned


async def open_hosted_checkout(
    request: web.Request,
    viewer: Viewer,
    action: Action,
    subscription_id: str | None,
    payload: dict[str, object],
    form: FormResult[ChosenPlan],
    choice: ChosenPlan,
) -> web.StreamResponse:
    """Open billing's hosted checkout, remember the choices, and send the browser there."""
    app = request.app
    client = app[billing_client_key]
    waiting = await over_budget(request, viewer, action, subscription_id, calls=1)
    if waiting is not None:
        return waiting
    try:
        page = await (
            client.new_subscription_page(NewSubscriptionPage.model_validate(payload))
            if action is Action.SUBSCRIBE
            else client.update_subscription_page(UpdateSubscriptionPage.model_validate(payload))
        )
    except BillingError as error:
        await audit_action(
            request,
            viewer.session,
            action,
            subscription_id,
            f"failed: {error.code}",
            choice.audit(),
        )
        return with_retry_after(
            await plan_page(
                request, viewer, action, form, status=error.status, problem=billing_problem(error)
            ),
            error,
        )
    hostedpage_id, url = page.hostedpage_id, page.url
    if not hostedpage_id or not url:
        log.error("billing.hosted_page_unusable", action=action)
        return await plan_page(
            request,
            viewer,
            action,
            form,
            status=502,
            problem="Billing did not open a checkout page. Nothing was "
            "changed; try again in a minute.",
        )
    await app[store_key].write(
        partial(
            _open_checkout_and_audit,
            hostedpage_id=hostedpage_id,
            action=action,
            entry=ActionAudit.of(request, viewer.session, action, subscription_id),
            form=form.values,
            detail=choice.audit(),
        )
    )
    return web.Response(status=303, headers={"Location": url})


def _open_checkout_and_audit(
    db: Tx,
    *,
    hostedpage_id: str,
    action: Action,
    entry: ActionAudit,
    form: dict[str, str],
    detail: dict[str, object],
) -> None:
    open_checkout(
        db,
        hostedpage_id=hostedpage_id,
        zgid=entry.session.zgid,
        zuid=entry.session.zuid,
        action=action,
        subscription_id=entry.subscription_id,
        form=form,
        now=entry.at,
    )
    entry.record(db, result="sent to checkout", detail={**detail, "hostedpage_id": hostedpage_id})


def plan_and_addons(choice: ChosenPlan) -> dict[str, object]:
    """The plan and storage add-on of a checked choice, as billing's subscription body has them."""
    return {
        "plan": {"plan_code": choice.plan_code, "quantity": choice.users},
        "addons": _storage_addons(choice),
    }


def _storage_addons(choice: ChosenPlan) -> list[dict[str, object]]:
    if choice.storage and choice.storage_code:
        return [{"addon_code": choice.storage_code, "quantity": choice.storage}]
    return []


def _new_customer(session: Session) -> dict[str, str]:
    """The billing customer to create; the hosted page documents no custom fields on it."""
    first, _, last = session.name.partition(" ")
    return {
        "display_name": session.company or session.name,
        "company_name": session.company or "",
        "first_name": first,
        "last_name": last,
        "email": session.email or "",
    }


def return_url(request: web.Request) -> str:
    """Where billing's checkout sends the browser back to: the public URL when one is set."""
    public = request.app[settings_key].landing.public_url
    base = public or f"{request.scheme}://{request.host}"
    return f"{base}/manage/return"
