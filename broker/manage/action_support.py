"""What every Manage Subscription action shares: the guarded form post, the audit row, and the
direct billing call whose answer goes through the state pipeline.

Every action checks the session's CSRF token and the viewer's right to act, and is written to the
audit log with its result; a refusal is audited before it is raised. A change billing applies at
once is fed into the same state pipeline as a webhook, so the Developer Console is updated without
waiting for the webhook (which then changes nothing). This module knows no particular action:
what to show when billing fails is the caller's to say.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import structlog
from aiohttp import web

from broker.clients.billing import BillingClient
from broker.clients.billing_quota import retry_after_value, wait_in_words
from broker.config import PausePolicy, Settings
from broker.core.billing_events import BillingSubscription
from broker.core.forms import FormNotText, text_pairs
from broker.core.policy import Action, allowed_actions, refusal
from broker.errors import (
    ActionNotAllowed,
    BillingAnswerInvalid,
    BillingBudgetSpent,
    BillingError,
    BillingRateLimited,
    BillingRejected,
    ClientError,
    Forbidden,
)
from broker.manage.identity import remember
from broker.manage.pages import outcome
from broker.manage.sessions import Session, check_csrf
from broker.manage.viewer import Viewer, load_viewer
from broker.store.audit import record_action
from broker.store.engine.tx import Tx
from broker.store.pipeline import ingest_billing_read
from broker.store.queries import SubscriptionView
from broker.web.appkeys import (
    billing_client_key,
    call_budget_key,
    clock_key,
    request_id_key,
    settings_key,
    store_key,
    worker_key,
)

log = structlog.get_logger(__name__)
R = TypeVar("R", bound=web.StreamResponse)

BillingCall = Callable[[BillingClient], Awaitable[BillingSubscription | None]]
OnBillingError = Callable[[BillingError], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ActionAudit:
    """Who did which action to which subscription, and when: an audit row but for its result.

    Built before the store write so the row carries the request's time and id even though it is
    written inside a transaction on the store's thread.
    """

    session: Session
    action: str
    subscription_id: str | None
    at: float
    request_id: str | None

    @classmethod
    def of(
        cls, request: web.Request, session: Session, action: str, subscription_id: str | None
    ) -> ActionAudit:
        return cls(
            session=session,
            action=action,
            subscription_id=subscription_id,
            at=request.app[clock_key](),
            request_id=request.get(request_id_key),
        )

    def record(self, db: Tx, *, result: str, detail: Mapping[str, object] | None) -> None:
        """Add the row; runs inside a store transaction."""
        record_action(
            db,
            at=self.at,
            zuid=self.session.zuid,
            zgid=self.session.zgid,
            action=self.action,
            subscription_id=self.subscription_id,
            result=result,
            detail=detail,
            request_id=self.request_id,
        )


async def audit_action(
    request: web.Request,
    session: Session,
    action: str,
    subscription_id: str | None,
    result: str,
    detail: Mapping[str, object] | None,
) -> None:
    """Write one audit row in its own transaction (refusals and failures)."""
    entry = ActionAudit.of(request, session, action, subscription_id)
    await request.app[store_key].write(partial(entry.record, result=result, detail=detail))


async def posted_form(request: web.Request) -> tuple[Viewer, Mapping[str, str]]:
    """The viewer and the posted form's fields, once the CSRF token checks out and every field
    is text (``forms.text_pairs``; a refusal is audited)."""
    viewer = await load_viewer(request, refresh=False)
    posted = await request.post()
    try:
        # The last of a repeated name counts, as in the form read below.
        check_csrf(viewer.session, dict(posted.items()).get("csrf_token"))
    except Forbidden:
        await audit_action(
            request, viewer.session, _action_of(request), None, "refused: csrf", None
        )
        raise
    try:
        form = dict(text_pairs(posted.items()))
    except FormNotText as error:
        await audit_action(
            request, viewer.session, _action_of(request), None, f"refused: {error.code}", None
        )
        raise
    return viewer, form


class BillingNotAsked(ClientError):
    status = 503
    code = "billing_not_asked"


async def require_billing_asked(request: web.Request, viewer: Viewer) -> None:
    """Fail closed: no new subscription starts unless billing just said which ones the org has
    (otherwise an org that already pays could be sold a second one). Audited."""
    if viewer.billing_checked or not viewer.billing_enabled:
        return
    error = BillingNotAsked(
        "billing could not be asked which subscriptions your organisation already has, so no "
        "new subscription can be started now",
        hint="nothing was charged; open this page again in a minute",
    )
    await audit_action(
        request, viewer.session, str(Action.SUBSCRIBE), None, f"refused: {error.code}", None
    )
    raise error


async def require_action(request: web.Request, viewer: Viewer, action: Action) -> None:
    """Go on only if ``core.policy`` lets this viewer do ``action`` now; otherwise
    audit the refusal and raise it: 409 when the status does not allow it, 403 when the
    viewer's rights do not."""
    if action in viewer.actions:
        return
    error: ClientError
    if not viewer.billing_enabled:
        error = ActionNotAllowed(
            "changes cannot be made on this page: it is not connected to billing",
            hint="ask the vendor to make the change",
        )
    elif (
        action is Action.PAUSE
        and viewer.pause_policy == PausePolicy.NONE
        and action in allowed_actions(viewer.facts)
    ):
        error = ActionNotAllowed(
            "pausing is not offered: the vendor has not chosen whether the app keeps working "
            "during a pause",
            hint="cancel at the end of the term instead, or ask the vendor to offer pausing",
        )
    elif action in allowed_actions(viewer.facts):
        error = Forbidden(
            "only your organisation's billing owner can change this subscription",
            hint="ask the person who subscribed, or the vendor, to make the change",
        )
    else:
        why = refusal(viewer.facts, action)
        error = ActionNotAllowed(why.message, hint=why.hint)
    current = viewer.current
    await audit_action(
        request,
        viewer.session,
        str(action),
        current.subscription_id if current else None,
        f"refused: {error.code}",
        None,
    )
    raise error


async def subscription_for(
    request: web.Request, viewer: Viewer, action: Action
) -> SubscriptionView:
    """The subscription ``action`` applies to, once the rule allows it (every action but
    subscribe needs one, so the rule never allows them without it)."""
    await require_action(request, viewer, action)
    if viewer.current is None:
        raise ActionNotAllowed("your organisation has no running subscription to change")
    return viewer.current


async def apply_in_billing(
    request: web.Request,
    viewer: Viewer,
    action: str,
    subscription_id: str,
    call: BillingCall,
    *,
    notice: str,
    detail: Mapping[str, object] | None = None,
    on_error: OnBillingError | None = None,
) -> web.StreamResponse:
    """Call billing, feed its answer to the pipeline, audit, and go back to the overview.

    When billing fails, ``on_error`` answers (a form shown again, say); without it, a page says
    nothing was changed and offers the overview again.
    """
    app = request.app
    client = app[billing_client_key]
    waiting = await over_budget(request, viewer, action, subscription_id, calls=1)
    if waiting is not None:
        return waiting
    try:
        document = await call(client) or await client.get_subscription(subscription_id)
        if document is None:
            raise BillingAnswerInvalid("Zoho Billing's answer carried no subscription")
    except BillingError as error:
        await audit_action(
            request, viewer.session, action, subscription_id, f"failed: {error.code}", detail
        )
        if on_error is not None:
            return with_retry_after(await on_error(error), error)
        return with_retry_after(
            outcome(
                request,
                viewer.session,
                status=error.status,
                title="Billing did not make the change",
                text=billing_problem(error),
                retry_url="/manage",
            ),
            error,
        )
    session = viewer.session
    queued = await app[store_key].write(
        partial(
            _ingest_and_audit,
            document=document,
            settings=app[settings_key],
            entry=ActionAudit.of(request, session, action, subscription_id),
            detail=detail,
        )
    )
    if queued:
        app[worker_key].wake()
    response = web.Response(status=303, headers={"Location": "/manage"})
    remember(request, response, session.with_notice(notice))
    return response


def _ingest_and_audit(
    db: Tx,
    *,
    document: BillingSubscription,
    settings: Settings,
    entry: ActionAudit,
    detail: Mapping[str, object] | None,
) -> bool:
    result = ingest_billing_read(
        db, document, source=f"page:{entry.action}", settings=settings, now=entry.at
    )
    entry.record(db, result="ok", detail=detail)
    return result.queued


async def over_budget(
    request: web.Request,
    viewer: Viewer,
    action: str,
    subscription_id: str | None,
    *,
    calls: int,
) -> web.Response | None:
    """None when this session may make ``calls`` more billing calls now (they are spent);
    otherwise a 429 page asking to wait, with Retry-After (audited). The visitor's own pace is
    what is refused here, hence 429; billing's own 429 is shown as a 503 (``billing_problem``)."""
    wait = request.app[call_budget_key].take(viewer.session.csrf, calls)
    if wait is None:
        return None
    log.info("billing.session_over_budget", action=action, retry_after=round(wait, 1))
    await audit_action(
        request, viewer.session, action, subscription_id, "refused: session_over_budget", None
    )
    response = outcome(
        request,
        viewer.session,
        status=429,
        title="Please wait a moment",
        text="You have asked billing for several things in a short time. Nothing was "
        f"changed; try again in {wait_in_words(wait)}.",
        retry_url="/manage",
    )
    response.headers["Retry-After"] = retry_after_value(wait)
    return response


def with_retry_after(response: R, error: BillingError) -> R:
    """Tell the browser (and any proxy) when billing will take calls again, after a 429."""
    if isinstance(error, BillingRateLimited) and error.retry_after is not None:
        response.headers["Retry-After"] = retry_after_value(error.retry_after)
    return response


def billing_problem(error: BillingError) -> str:
    """What the user reads when billing failed: refused, busy, or not reachable just now."""
    message = error.message.rstrip(".")
    if isinstance(error, BillingBudgetSpent):
        wait = error.retry_after if error.retry_after is not None else 60.0
        when = f"about {math.ceil(wait / 3600)} hours" if wait > 3600 else wait_in_words(wait)
        return (
            "Billing's allowance of calls for today is used up, so it was not asked "
            f"({message.removeprefix('Billing was not called: ')}). Nothing was changed and "
            f"your choices are kept; try again in {when}."
        )
    if isinstance(error, BillingRateLimited):
        wait = error.retry_after if error.retry_after is not None else 60.0
        return (
            "Billing is busy right now (it is limiting how often it is called). Nothing was "
            f"changed and your choices are kept; try again in {wait_in_words(wait)}."
        )
    if isinstance(error, BillingRejected):
        return f"Billing refused the change: {message}. Nothing was changed."
    return f"{message}. Nothing was changed and your choices are kept; try again in a minute."


def _action_of(request: web.Request) -> str:
    return request.path.rsplit("/", 1)[-1]
