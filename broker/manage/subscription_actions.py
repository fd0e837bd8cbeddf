"""Acting on the running subscription from the Manage Subscription page: cancel (now or at term
end), reactivate, pause until a date (previewing the credit it earns), and resume.

Each is one direct billing call whose answer goes through the state pipeline
(``action_support.apply_in_billing``); none goes through a hosted checkout. A form that does not
check out is shown again with what is wrong; it never reaches billing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import structlog
from aiohttp import web

from broker.core.billing_requests import PauseRequest
from broker.core.forms import (
    CancelWhen,
    ChosenPause,
    FormResult,
    parse_cancel_form,
    parse_pause_form,
)
from broker.core.pause_credit import PauseCredit, pause_credit
from broker.core.pause_terms import PAUSE_EFFECTS
from broker.core.policy import Action
from broker.manage.action_support import apply_in_billing, posted_form, subscription_for
from broker.manage.money_shown import cancel_shown
from broker.manage.pages import render
from broker.manage.viewer import load_viewer
from broker.store.queries import SubscriptionView
from broker.web.appkeys import clock_key

log = structlog.get_logger(__name__)

PREVIEW_UNAVAILABLE = (
    "The credit cannot be previewed: billing has not given a price we can read for this "
    "term. You can still pause; billing works out the credit when you resume."
)


async def cancel_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    current = await subscription_for(request, viewer, Action.CANCEL)
    return render(
        request,
        "cancel.html",
        {"viewer": viewer, "current": current, "money": cancel_shown(request, current)},
    )


async def cancel(request: web.Request) -> web.StreamResponse:
    viewer, form = await posted_form(request)
    current = await subscription_for(request, viewer, Action.CANCEL)
    chosen = parse_cancel_form(form, default=CancelWhen.TERM_END)
    money = cancel_shown(request, current)
    if chosen.cleaned is None:
        log.info("page.cancel_not_confirmed", when_known="when" not in chosen.errors)
        return render(
            request,
            "cancel.html",
            {
                "viewer": viewer,
                "current": current,
                "money": money,
                "problem": "Tick the box to confirm, then choose when the subscription ends.",
            },
            status=422,
        )
    subscription_id = current.subscription_id
    when = chosen.cleaned.when
    at_end = when is CancelWhen.TERM_END
    shown = money[when]
    return await apply_in_billing(
        request,
        viewer,
        f"cancel_{when}",
        subscription_id,
        lambda client: client.cancel_subscription(subscription_id, at_term_end=at_end),
        notice=(
            "Your subscription will end on "
            + (current.term_ends_at or "the term end")
            + ". You can reactivate it until then."
        )
        if at_end
        else f"Your subscription was cancelled. {shown.summary}",
        detail={"when": when, **shown.audit()},
    )


async def reactivate(request: web.Request) -> web.StreamResponse:
    viewer, _ = await posted_form(request)
    current = await subscription_for(request, viewer, Action.REACTIVATE)
    subscription_id = current.subscription_id
    return await apply_in_billing(
        request,
        viewer,
        "reactivate",
        subscription_id,
        lambda client: client.reactivate_subscription(subscription_id),
        notice="Your subscription is active again.",
    )


async def pause_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    current = await subscription_for(request, viewer, Action.PAUSE)
    form = (
        parse_pause_form(request.query, today=_today(request))
        if "resume_on" in request.query
        else FormResult[ChosenPause]({"resume_on": ""})
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
    viewer, posted = await posted_form(request)
    current = await subscription_for(request, viewer, Action.PAUSE)
    form = parse_pause_form(posted, today=_today(request))
    if form.cleaned is None:
        return render(
            request,
            "pause.html",
            {"viewer": viewer, "current": current, "form": form, "preview": None},
            status=422,
        )
    subscription_id = current.subscription_id
    body = PauseRequest(
        pause_date=_today(request).isoformat(),
        resume_date=form.cleaned.resume_on.isoformat(),
    )
    return await apply_in_billing(
        request,
        viewer,
        "pause",
        subscription_id,
        lambda client: client.pause_subscription(subscription_id, body),
        notice=(
            f"Your subscription is paused until {body.resume_date}. "
            + PAUSE_EFFECTS[viewer.pause_policy]
        ),
    )


async def resume(request: web.Request) -> web.StreamResponse:
    viewer, _ = await posted_form(request)
    current = await subscription_for(request, viewer, Action.RESUME)
    subscription_id = current.subscription_id
    return await apply_in_billing(
        request,
        viewer,
        "resume",
        subscription_id,
        lambda client: client.resume_subscription(subscription_id),
        notice="Your subscription is running again.",
    )


@dataclass(frozen=True)
class PausePreview:
    """The credit a pause would earn, or why it cannot be shown (``credit`` is then None)."""

    credit: PauseCredit | None
    price: Decimal | None
    currency: str
    unavailable: str | None = None


def _preview(
    request: web.Request, current: SubscriptionView, form: FormResult[ChosenPause]
) -> PausePreview | None:
    """The credit a pause until the chosen date would earn; None until a date checks out.

    Billing's figures are not ours to trust blindly: an amount it formatted as text is read
    with ``parse_amount``, and what still cannot be read makes the preview say so (never a 500).
    """
    if form.cleaned is None:
        return None
    currency = str(current.currency_code or "")
    price = current.amount  # a Decimal from the read model, None when unreadable
    try:
        term_start = date.fromisoformat(str(current.term_starts_at))
        term_end = date.fromisoformat(str(current.term_ends_at))
        if price is None:
            raise ValueError("no readable amount")
        credit = pause_credit(
            price=price,
            term_start=term_start,
            term_end=term_end,
            pause_start=_today(request),
            resume_on=form.cleaned.resume_on,
        )
    except ValueError as problem:
        log.warning(
            "pause.preview_unavailable",
            subscription_id=current.subscription_id,
            reason=str(problem)[:200],
        )
        return PausePreview(None, price, currency, unavailable=PREVIEW_UNAVAILABLE)
    return PausePreview(credit, price, currency)


def _today(request: web.Request) -> date:
    return datetime.fromtimestamp(request.app[clock_key](), UTC).date()
