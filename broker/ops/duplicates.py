"""Resolving a conflict from the console's org view: the operator cancels, in billing, the
duplicate the platform does not have (``/ops/orgs/{zgid}/cancel_duplicate``), after a
confirmation page that says which one ends, which one stays and what happens to money.

Why only that way round: the platform holds one subscription per org, and deliveries of two
subscriptions are not ordered (``store.outbox``), so switching which one the platform has could
put two live on it. The subscription the platform keeps (``core.org_billing.keeper``) is never
cancelled from here; naming it is refused with what to do instead.

Every id the browser sends is hostile: acted on only when the store lists it as one of this
org's duplicates. Every POST carries the operator's CSRF token; a refusal, a billing failure and
the change are each audited under the org, the change in the same transaction as billing's
answer going through the pipeline (a duplicate was never on the platform: nothing is sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web

from broker.core.ids import is_zoho_id
from broker.core.org_billing import bills
from broker.errors import (
    ActionNotAllowed,
    BillingAnswerInvalid,
    BillingError,
    Forbidden,
    NotFound,
)
from broker.ops.access import OpsSession, check_csrf
from broker.ops.org_view import zgid_of
from broker.ops.support import operator, operator_session, render
from broker.store import ops_actions
from broker.store.org_reads import HeldSubscription, org_held
from broker.web.appkeys import (
    billing_client_key,
    clock_key,
    settings_key,
    store_key,
    worker_key,
)

log = structlog.get_logger(__name__)
ACTION = "ops.cancel_duplicate"
WHEN = ("now", "term_end")


class NotADuplicate(NotFound):
    code = "not_a_duplicate"


class KeptSubscription(ActionNotAllowed):
    code = "kept_subscription"


@dataclass(frozen=True)
class Choice:
    """The duplicate the operator named, and the subscriptions the platform keeps."""

    zgid: str
    duplicate: HeldSubscription
    kept: tuple[HeldSubscription, ...]


async def cancel_duplicate_form(request: web.Request) -> web.Response:
    session = operator_session(request)
    choice = await _choice(request, session, request.query.get("subscription_id"))
    return render(request, "ops_cancel_duplicate.html", session, _context(choice))


async def cancel_duplicate(request: web.Request) -> web.StreamResponse:
    """Confirmed (``confirm=yes`` and a ``when``): cancel in billing, record, back to the org."""
    session = operator_session(request)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    zgid = zgid_of(request)
    try:
        check_csrf(session, form.get("csrf"))
    except Forbidden:
        await _refused(request, session, zgid, None, "refused: csrf")
        raise
    choice = await _choice(request, session, form.get("subscription_id"))
    when = form.get("when", "")
    if when not in WHEN or form.get("confirm") != "yes":
        problem = "Tick the box to confirm, then choose when the duplicate ends."
        return render(
            request,
            "ops_cancel_duplicate.html",
            session,
            {**_context(choice), "problem": problem},
            status=422,
        )
    app = request.app
    sid = choice.duplicate.subscription_id
    detail: dict[str, object] = {
        "duplicate": sid,
        "kept": [k.subscription_id for k in choice.kept],
        "when": when,
    }
    if billing_client_key not in app:
        raise ActionNotAllowed(
            "billing is not configured ([billing] is unset), so nothing can be cancelled there",
            hint="cancel the duplicate in Zoho Billing itself",
        )
    try:
        document = await app[billing_client_key].cancel_subscription(
            sid, at_term_end=when == "term_end"
        ) or await app[billing_client_key].get_subscription(sid)
        if document is None:
            raise BillingAnswerInvalid("Zoho Billing's answer carried no subscription")
    except BillingError as error:
        log.warning("ops.cancel_duplicate_failed", zgid=zgid, subscription_id=sid, code=error.code)
        await _refused(request, session, zgid, sid, f"failed: {error.code}", detail)
        problem = (
            f"Billing did not cancel it ({error.code}); nothing was changed. "
            "Try again in a minute, or cancel it in Zoho Billing itself."
        )
        return render(
            request,
            "ops_cancel_duplicate.html",
            session,
            {**_context(choice), "problem": problem},
            status=error.status,
        )
    queued = await app[store_key].write(
        partial(
            ops_actions.duplicate_cancelled,
            who=operator(request, session),
            document=document,
            zgid=zgid,
            detail=detail,
            settings=app[settings_key],
            now=app[clock_key](),
        )
    )
    if queued and worker_key in app:
        app[worker_key].wake()
    log.info("ops.cancel_duplicate", zgid=zgid, subscription_id=sid, when=when)
    notice = (
        f"Duplicate subscription {sid} will end at its term end"
        if when == "term_end"
        else f"Duplicate subscription {sid} was cancelled"
    ) + "; the one the platform has is unchanged."
    raise web.HTTPSeeOther(f"/ops/orgs/{quote(zgid)}?" + urlencode({"notice": notice}))


def _context(choice: Choice) -> dict[str, object]:
    return {"zgid": choice.zgid, "duplicate": choice.duplicate, "kept": choice.kept}


async def _choice(request: web.Request, session: OpsSession, named: object) -> Choice:
    """The org's duplicate the operator named; refusals (audited) for anything else: 404 for
    an id that is not one of this org's duplicates, 409 for the subscription the platform keeps."""
    zgid = zgid_of(request)
    wanted = named.strip() if isinstance(named, str) else ""
    held = await request.app[store_key].read(partial(org_held, zgid=zgid))
    found = next((s for s in held.subscriptions if s.subscription_id == wanted), None)
    kept = tuple(s for s in held.subscriptions if bills(s.status) and not s.conflict)
    if found is not None and found in kept:
        await _refused(request, session, zgid, wanted, "refused: kept_subscription")
        others = ", ".join(s.subscription_id for s in held.subscriptions if s.conflict)
        raise KeptSubscription(
            f"subscription {wanted} is the one the platform has for org {zgid}: the broker "
            "keeps it and it is not cancelled from here",
            hint=(f"cancel the duplicate ({others}) instead; " if others else "")
            + "to keep another one, end this one in billing first (the owner's Cancel on "
            "their page) and cancel the duplicate only once the platform no longer has it",
        )
    if found is None or not found.conflict:
        safe = wanted[:40] if is_zoho_id(wanted[:32]) else "(not a subscription id)"
        await _refused(request, session, zgid, None, "refused: not_a_duplicate", {"named": safe})
        raise NotADuplicate(
            f"{safe} is not a duplicate subscription of org {zgid}",
            hint="go back to the org view; only a subscription it marks as a duplicate can be "
            "cancelled here",
        )
    return Choice(zgid, found, kept)


async def _refused(
    request: web.Request,
    session: OpsSession,
    zgid: str,
    subscription_id: str | None,
    result: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Audit a refusal or failure in its own transaction, under the org."""
    log.warning("ops.cancel_duplicate_refused", zgid=zgid, result=result)
    who = operator(request, session)
    now = request.app[clock_key]()
    await request.app[store_key].write(
        lambda db: ops_actions.audit(
            db,
            who,
            ACTION,
            result,
            now=now,
            subscription_id=subscription_id,
            detail=detail,
            zgid=zgid,
        )
    )
