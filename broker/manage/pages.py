"""Manage Subscription page: entering from the app, the overview, and returning from checkout.

Handlers only translate between the browser and the rest: ``landing`` reads parameters,
``viewer`` decides who may do what, ``pipeline`` records what billing says. Every page is
server-rendered and works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import aiohttp_jinja2
import structlog
from aiohttp import web

from broker.config import LandingVerification, Settings
from broker.core.billing_events import BillingSubscription
from broker.core.forms import text_pairs
from broker.core.hosted_pages import CheckoutStatus, HostedPage
from broker.core.landing import ID_ALIASES
from broker.core.policy import Action
from broker.errors import BillingError, BillingNotFound, Forbidden, NotFound
from broker.manage.customer_fields import keep_on_customer
from broker.manage.identity import (
    refuse_unconfigured,
    remember,
    signed_visit,
    start_session,
    unverified_visit,
)
from broker.manage.login_csrf import check_landing_post
from broker.manage.money_billed import billed_for
from broker.manage.sessions import Session
from broker.manage.viewer import current_session, load_viewer
from broker.store.audit import record_action
from broker.store.checkouts import checkout_row, finish_checkout
from broker.store.engine.tx import Tx
from broker.store.pipeline import ingest_billing_read
from broker.web.appkeys import (
    billing_client_key,
    clock_key,
    org_reads_key,
    request_id_key,
    settings_key,
    store_key,
    worker_key,
)

log = structlog.get_logger(__name__)

LANDING_KEYS = frozenset(
    {"custom_fields", *(a for aliases in ID_ALIASES.values() for a in aliases)}
)


async def manage(request: web.Request) -> web.StreamResponse:
    """``/manage``: with landing parameters, sign the user in; without, show the overview."""
    # Pairs, not dicts: a name sent twice must stay visible to the checks.
    pairs = list(request.query.items())
    if request.method == "POST":
        pairs += text_pairs((await request.post()).items())
    if any(key in LANDING_KEYS for key, _ in pairs):
        return await _enter(request, pairs)
    viewer = await load_viewer(request)
    billed = await billed_for(request, viewer.current)
    response = render(
        request,
        "manage.html",
        {"viewer": viewer, "notice": viewer.session.notice, "billed": billed},
    )
    if viewer.session.notice:
        remember(request, response, viewer.session.with_notice(None))
    return response


async def _enter(request: web.Request, pairs: list[tuple[str, str]]) -> web.StreamResponse:
    """Landing parameters arrived: verify them in the configured mode, then sign the user in."""
    settings = request.app[settings_key]
    mode = settings.landing.verification
    if mode is None:
        return refuse_unconfigured(request)
    if request.method == "POST":
        check_landing_post(request, settings)
    if mode is LandingVerification.SIGNED:
        params = await signed_visit(request, pairs)
    elif mode is LandingVerification.NONE:
        params = unverified_visit(request, pairs)
    else:  # zoho: app.py routes /manage to oidc_pages, whose callback calls start_session
        return refuse_unconfigured(request)
    return await start_session(request, params, verified_by=mode)


async def checkout_return(request: web.Request) -> web.StreamResponse:
    """The billing checkout sends the browser back here; only billing's word counts."""
    app = request.app
    session = current_session(request)
    hostedpage_id = request.query.get("hostedpage_id", "").strip()
    checkout = (
        await app[store_key].read(partial(checkout_row, hostedpage_id=hostedpage_id))
        if hostedpage_id
        else None
    )
    if checkout is None:
        raise NotFound(
            "this checkout is not known here",
            hint="go back to the subscription page and start again",
        )
    if checkout.zgid != session.zgid:
        raise Forbidden("this checkout was started by another organisation")
    try:
        page = await app[billing_client_key].get_hosted_page(hostedpage_id)
    except BillingNotFound:  # billing forgets a page once it has expired [unsure]
        page = HostedPage(CheckoutStatus.EXPIRED, "not found")
    except BillingError as error:
        return outcome(
            request,
            session,
            status=error.status,
            title="We could not check the payment",
            text=f"{error.message}. Nothing is lost: come back to this page in a "
            "minute and we will check again.",
            retry_url=f"/manage/return?hostedpage_id={hostedpage_id}",
        )
    status = page.status
    if status is CheckoutStatus.UNKNOWN:
        log.warning("checkout.unknown_status", hostedpage_id=hostedpage_id, word=page.status_word)
    now = app[clock_key]()
    audit = _ReturnAudit(
        at=now,
        session=session,
        action=f"checkout_{checkout.action.value}",
        request_id=request.get(request_id_key),
        subscription_id=checkout.subscription_id,
        hostedpage_id=hostedpage_id,
    )
    if status is CheckoutStatus.PAID:
        document = page.subscription
        if checkout.status != CheckoutStatus.PAID.value and document is not None:
            result = await app[store_key].write(
                partial(
                    _record_success,
                    document=document,
                    source=f"hostedpage:{hostedpage_id}",
                    settings=app[settings_key],
                    now=now,
                    hostedpage_id=hostedpage_id,
                    audit=audit,
                )
            )
            if result:
                app[worker_key].wake()
            # The org's subscriptions just changed: the next view asks billing again.
            app[org_reads_key].forget(session.zgid)
            customer_id = _customer_id(document)
            if checkout.action is Action.SUBSCRIBE and customer_id:
                await keep_on_customer(app, customer_id, session)
        notice = (
            "Thank you: your subscription is active."
            if checkout.action is Action.SUBSCRIBE
            else "Your subscription was changed."
        )
        response = web.Response(status=303, headers={"Location": "/manage"})
        remember(request, response, session.with_notice(notice))
        return response
    await app[store_key].write(
        partial(
            _record_other,
            hostedpage_id=hostedpage_id,
            status=status,
            now=now,
            audit=audit,
        )
    )
    again = "/manage/subscribe" if checkout.action is Action.SUBSCRIBE else "/manage/change"
    if status is CheckoutStatus.FAILED:
        return outcome(
            request,
            session,
            status=402,
            title="The payment did not go through",
            text="Nothing was changed and you were not charged. You can try again "
            "with the same choices or another card.",
            retry_url=f"{again}?resume={hostedpage_id}",
        )
    if status is CheckoutStatus.CANCELLED:
        return outcome(
            request,
            session,
            status=409,
            title="The checkout was cancelled",
            text="Nothing was changed and you were not charged. Your choices are kept: "
            "start the checkout again.",
            retry_url=f"{again}?resume={hostedpage_id}",
        )
    if status is CheckoutStatus.EXPIRED:
        return outcome(
            request,
            session,
            status=410,
            title="The checkout page expired",
            text="Checkout pages are open for a limited time. Your choices are kept: "
            "start the checkout again.",
            retry_url=f"{again}?resume={hostedpage_id}",
        )
    return outcome(
        request,
        session,
        status=409,
        title="The checkout was not finished",
        text="Billing has not recorded a payment yet. Continue the checkout, or start "
        "again with the same choices.",
        retry_url=f"{again}?resume={hostedpage_id}",
        continue_url=page.url,
    )


@dataclass(frozen=True)
class _ReturnAudit:
    """The audit row of a return from checkout, but for its result and subscription: built
    before the store write so it carries the request's time and id."""

    at: float
    session: Session
    action: str
    request_id: str | None
    subscription_id: str | None  # the one the checkout was opened for, if any
    hostedpage_id: str

    def record(self, db: Tx, *, result: str, subscription_id: str | None) -> None:
        record_action(
            db,
            at=self.at,
            zuid=self.session.zuid,
            zgid=self.session.zgid,
            action=self.action,
            result=result,
            subscription_id=subscription_id,
            detail={"hostedpage_id": self.hostedpage_id},
            request_id=self.request_id,
        )


def _record_success(
    db: Tx,
    *,
    document: dict[str, object],
    source: str,
    settings: Settings,
    now: float,
    hostedpage_id: str,
    audit: _ReturnAudit,
) -> bool:
    result = ingest_billing_read(db, document, source=source, settings=settings, now=now)
    finish_checkout(db, hostedpage_id, status=CheckoutStatus.PAID, now=now)
    paid = str(document.get("subscription_id") or "") or None
    audit.record(db, result="ok", subscription_id=paid)
    return result.queued


def _customer_id(document: Mapping[str, object]) -> str | None:
    """The paid subscription's billing customer, read as the pipeline read the document (it
    validated there, in ``_record_success``, before this is asked)."""
    return BillingSubscription.model_validate(document).effective_customer_id()


def _record_other(
    db: Tx, *, hostedpage_id: str, status: CheckoutStatus, now: float, audit: _ReturnAudit
) -> None:
    finish_checkout(db, hostedpage_id, status=status, now=now)
    audit.record(db, result=f"checkout {status.value}", subscription_id=audit.subscription_id)


def render(
    request: web.Request, template: str, context: Mapping[str, object], *, status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def outcome(
    request: web.Request,
    session: Session,
    *,
    status: int,
    title: str,
    text: str,
    retry_url: str | None = None,
    continue_url: str | None = None,
) -> web.Response:
    """A page that says what happened and what to do next."""
    return render(
        request,
        "outcome.html",
        {
            "title": title,
            "text": text,
            "retry_url": retry_url,
            "continue_url": continue_url,
            "session": session,
        },
        status=status,
    )
