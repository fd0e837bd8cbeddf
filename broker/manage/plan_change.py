"""Changing the running plan from the Manage Subscription page: plan, users, storage or cycle.

The route comes from ``plan_pricing`` (same-period prices): an unchanged form does nothing; a
change that plainly costs no more is applied in billing directly; anything else goes through
billing's hosted checkout (``plan_actions``). Skipping checkout is decided on billing's word, not
on the stored copy: a copy left behind by a lost webhook could make a dearer change look free,
so billing is read once more before a direct change.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from functools import partial

import structlog
from aiohttp import web

from broker.core.billing_requests import SubscriptionUpdate
from broker.core.catalog import Catalog
from broker.core.change_money import cents
from broker.core.forms import ChosenPlan, FormResult
from broker.core.mapping import YEARLY
from broker.core.plan_pricing import (
    ChangeDecision,
    ChangeRoute,
    Configuration,
    period_price,
    route_change,
)
from broker.core.policy import Action
from broker.errors import BillingError
from broker.manage.action_support import (
    apply_in_billing,
    audit_action,
    billing_problem,
    over_budget,
    posted_form,
    subscription_for,
    with_retry_after,
)
from broker.manage.identity import remember
from broker.manage.money_shown import ShownMoney, change_shown, today
from broker.manage.pages import render
from broker.manage.plan_actions import (
    FREQUENCY_NAMES,
    checked_choice,
    open_hosted_checkout,
    plan_and_addons,
    plan_page,
    resumed_form,
    return_url,
)
from broker.manage.viewer import Viewer, load_viewer
from broker.store.pipeline import ingest_billing_read
from broker.store.queries import SubscriptionView, org_subscriptions
from broker.web.appkeys import billing_client_key, clock_key, settings_key, store_key, worker_key

log = structlog.get_logger(__name__)

UNCHANGED_NOTICE = (
    "Nothing was changed: you chose the plan, users, storage and billing cycle you already have."
)


async def change_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    current = await subscription_for(request, viewer, Action.CHANGE)
    values = await resumed_form(request, viewer) or {
        "planid": current.planid or "",
        "frequency": FREQUENCY_NAMES.get(current.frequency or "", "monthly"),
        "users": str(current.users or 1),
        "storage": str(current.storage_units or 0),
    }
    return await plan_page(request, viewer, Action.CHANGE, FormResult[ChosenPlan](values))


async def change(request: web.Request) -> web.StreamResponse:
    viewer, form = await posted_form(request)
    current = await subscription_for(request, viewer, Action.CHANGE)
    subscription_id = current.subscription_id
    now = Configuration.of_subscription(current)
    if now is not None and Configuration.of_form(form) == now:
        # Recognised before the catalog is read: an unchanged form costs no billing call.
        return await _unchanged(request, viewer, subscription_id, now)
    checked = await checked_choice(request, viewer, Action.CHANGE, form)
    if isinstance(checked, web.Response):
        return checked
    catalog, parsed, choice = checked
    wanted = _configuration(choice)
    decision = _routed(catalog, now, wanted, subscription_id, "stored copy")
    if decision.route is ChangeRoute.DIRECT:
        in_billing = await _view_in_billing(request, viewer, subscription_id, parsed)
        if isinstance(in_billing, web.StreamResponse):
            return in_billing
        current = in_billing or current
        now = Configuration.of_subscription(in_billing) if in_billing is not None else None
        decision = _routed(catalog, now, wanted, subscription_id, "billing")
    if decision.route is ChangeRoute.UNCHANGED:
        return await _unchanged(request, viewer, subscription_id, now)
    body = plan_and_addons(choice)
    if decision.route is ChangeRoute.DIRECT and now is not None:
        shown = change_shown(request, current, catalog, now, wanted)
        if form.get("confirm") != "yes":
            # Money moves only once the customer has seen it: the plan form's post shows the
            # confirmation, whose own post carries the explicit confirm.
            log.info("page.change_confirmation_shown", subscription_id=subscription_id)
            return _confirmation(request, viewer, catalog, parsed, now, wanted, shown)

        async def show_form_again(error: BillingError) -> web.StreamResponse:
            return await plan_page(
                request,
                viewer,
                Action.CHANGE,
                parsed,
                status=error.status,
                problem=billing_problem(error),
            )

        return await apply_in_billing(
            request,
            viewer,
            Action.CHANGE,
            subscription_id,
            lambda client: client.update_subscription(
                subscription_id, SubscriptionUpdate.model_validate({**body, "end_of_term": False})
            ),
            notice=f"Your subscription was changed. {shown.summary}",
            detail={**choice.audit(), **shown.audit()},
            on_error=show_form_again,
        )
    payload = {"subscription_id": subscription_id, **body, "redirect_url": return_url(request)}
    return await open_hosted_checkout(
        request, viewer, Action.CHANGE, subscription_id, payload, parsed, choice
    )


def _configuration(choice: ChosenPlan) -> Configuration:
    """What a checked choice asks for, in the terms the change is priced and routed in."""
    return Configuration(choice.planid, choice.frequency, choice.users, choice.storage)


def _routed(
    catalog: Catalog,
    now: Configuration | None,
    wanted: Configuration,
    subscription_id: str,
    compared_with: str,
) -> ChangeDecision:
    decision = route_change(catalog, now, wanted)
    log.info(
        "page.change_routed",
        subscription_id=subscription_id,
        compared_with=compared_with,
        route=decision.route,
        reason=decision.reason,
        old_yearly=str(decision.old_yearly),
        new_yearly=str(decision.new_yearly),
    )
    return decision


async def _view_in_billing(
    request: web.Request, viewer: Viewer, subscription_id: str, parsed: FormResult[ChosenPlan]
) -> SubscriptionView | web.StreamResponse | None:
    """What billing says the subscription is now (recorded like any billing read); or the
    form again, saying why, when billing cannot tell us."""
    app = request.app
    waiting = await over_budget(request, viewer, Action.CHANGE, subscription_id, calls=1)
    if waiting is not None:
        return waiting
    try:
        document = await app[billing_client_key].get_subscription(subscription_id)
    except BillingError as error:
        await audit_action(
            request, viewer.session, Action.CHANGE, subscription_id, f"failed: {error.code}", None
        )
        page = await plan_page(
            request,
            viewer,
            Action.CHANGE,
            parsed,
            status=error.status,
            problem=billing_problem(error),
        )
        return with_retry_after(page, error)
    settings = app[settings_key]
    if document:
        result = await app[store_key].write(
            partial(
                ingest_billing_read,
                document=document,
                source="page:change-check",
                settings=settings,
                now=app[clock_key](),
            )
        )
        if result.queued:
            app[worker_key].wake()
    views = await app[store_key].read(
        partial(org_subscriptions, zgid=viewer.session.zgid, settings=settings)
    )
    return next((v for v in views if v.subscription_id == subscription_id), None)


async def change_confirm_form(request: web.Request) -> web.StreamResponse:
    """The confirmation of a change that skips checkout, for the choice in the query string;
    a choice that needs checkout, or changes nothing, goes back to the plan form."""
    viewer = await load_viewer(request, refresh=False)
    current = await subscription_for(request, viewer, Action.CHANGE)
    checked = await checked_choice(request, viewer, Action.CHANGE, dict(request.query))
    if isinstance(checked, web.Response):
        return checked
    catalog, parsed, choice = checked
    now, wanted = Configuration.of_subscription(current), _configuration(choice)
    decision = _routed(catalog, now, wanted, current.subscription_id, "stored copy")
    if decision.route is not ChangeRoute.DIRECT or now is None:
        return web.Response(status=303, headers={"Location": "/manage/change"})
    shown = change_shown(request, current, catalog, now, wanted)
    return _confirmation(request, viewer, catalog, parsed, now, wanted, shown)


def _confirmation(
    request: web.Request,
    viewer: Viewer,
    catalog: Catalog,
    parsed: FormResult[ChosenPlan],
    now: Configuration,
    wanted: Configuration,
    shown: ShownMoney,
) -> web.Response:
    return render(
        request,
        "change_confirm.html",
        {
            "viewer": viewer,
            "form": parsed,
            "wanted": wanted,
            "before": _described(catalog, now, shown.currency),
            "after": _described(catalog, wanted, shown.currency),
            "new_price": _cents(period_price(catalog, wanted)),
            "shown": shown,
            "today": today(request).isoformat(),
        },
    )


def _described(catalog: Catalog, config: Configuration, currency: str) -> str:
    """'Standard, 3 users, monthly: 30.00 USD a month', as the confirmation shows a choice."""
    plan = catalog.plan(config.planid)
    parts = [plan.name if plan else f"Plan {config.planid}"]
    parts.append(f"{config.users} user" + ("" if config.users == 1 else "s"))
    if config.storage:
        parts.append(f"{config.storage} storage unit" + ("" if config.storage == 1 else "s"))
    yearly = config.frequency == YEARLY
    parts.append("yearly" if yearly else "monthly")
    price = period_price(catalog, config)
    text = ", ".join(parts)
    if price is None:
        return text
    return f"{text}: {cents(price)} {currency} a {'year' if yearly else 'month'}"


def _cents(price: Decimal | None) -> Decimal | None:
    return cents(price) if price is not None else None


async def _unchanged(
    request: web.Request, viewer: Viewer, subscription_id: str, now: Configuration | None
) -> web.StreamResponse:
    """Nothing to send to billing or the platform: say so, and audit it."""
    detail: dict[str, object] = asdict(now) if now is not None else {}
    await audit_action(request, viewer.session, Action.CHANGE, subscription_id, "unchanged", detail)
    response = web.Response(status=303, headers={"Location": "/manage"})
    remember(request, response, viewer.session.with_notice(UNCHANGED_NOTICE))
    return response
