"""Cancelling the duplicate from the Manage Subscription page: when billing holds two
subscriptions that bill for one org (a conflict, ``core.org_billing``), the owner may cancel the
one the app does not use, after a confirmation page that says which one ends, which one stays and
what happens to money.

The id the browser names is hostile: it is acted on only when it is one of the session org's
duplicates as the store shows them (never the kept one, never another org's), and only by the
billing owner (the kept subscription's, or the duplicate's own). Every refusal is audited.
Billing's answer goes through the state pipeline (``action_support.apply_in_billing``): a
cancelled duplicate was never on the platform, so nothing is sent for it.
"""

from __future__ import annotations

from aiohttp import web

from broker.core.forms import CancelWhen, parse_cancel_form
from broker.errors import ActionNotAllowed, ClientError, Forbidden
from broker.manage.action_support import apply_in_billing, audit_action, posted_form
from broker.manage.pages import render
from broker.manage.viewer import Viewer, load_viewer
from broker.store.queries import SubscriptionView

ACTION = "cancel_duplicate"
PATH = "/manage/cancel_duplicate"


class NotADuplicate(ClientError):
    status = 404
    code = "not_a_duplicate"


async def cancel_duplicate_form(request: web.Request) -> web.Response:
    viewer = await load_viewer(request, refresh=False)
    duplicate = await _duplicate(request, viewer, request.query.get("subscription_id"))
    return render(request, "cancel_duplicate.html", _context(viewer, duplicate))


async def cancel_duplicate(request: web.Request) -> web.StreamResponse:
    viewer, form = await posted_form(request)
    duplicate = await _duplicate(request, viewer, form.get("subscription_id"))
    chosen = parse_cancel_form(form, default=CancelWhen.NOW)
    if chosen.cleaned is None:
        return render(
            request,
            "cancel_duplicate.html",
            {
                **_context(viewer, duplicate),
                "problem": "Tick the box to confirm, then choose when the duplicate ends.",
            },
            status=422,
        )
    subscription_id = duplicate.subscription_id
    when = chosen.cleaned.when
    at_end = when is CancelWhen.TERM_END
    kept = viewer.current.subscription_id if viewer.current else None
    return await apply_in_billing(
        request,
        viewer,
        f"{ACTION}_{when}",
        subscription_id,
        lambda client: client.cancel_subscription(subscription_id, at_term_end=at_end),
        notice=(
            f"The duplicate subscription {subscription_id} will end on "
            + (duplicate.term_ends_at or "its term end")
            + "; the one the app uses is unchanged."
        )
        if at_end
        else f"The duplicate subscription {subscription_id} was cancelled; the one the app "
        "uses is unchanged.",
        detail={"kept": kept, "duplicate": subscription_id},
    )


def _context(viewer: Viewer, duplicate: SubscriptionView) -> dict[str, object]:
    return {"viewer": viewer, "duplicate": duplicate, "kept": viewer.current, "path": PATH}


async def _duplicate(request: web.Request, viewer: Viewer, named: object) -> SubscriptionView:
    """The org's duplicate the browser named, once this viewer may cancel it; refusals are
    audited and raised (404 for any id that is not one of this org's duplicates, so another
    org's ids reveal nothing; 403 for a member who is not the billing owner)."""
    wanted = named if isinstance(named, str) else ""
    duplicate = next((d for d in viewer.conflicts if d.subscription_id == wanted), None)
    if duplicate is None:
        await audit_action(
            request,
            viewer.session,
            ACTION,
            None,
            "refused: not_a_duplicate",
            {"named": wanted[:40]},
        )
        raise NotADuplicate(
            "that is not a duplicate subscription of your organisation",
            hint="go back to the subscription page; only a subscription it lists as a "
            "duplicate can be cancelled this way",
        )
    if not viewer.billing_enabled:
        raise ActionNotAllowed(
            "changes cannot be made on this page: it is not connected to billing",
            hint="ask the vendor to cancel the duplicate",
        )
    owner = viewer.session.zuid
    if not (viewer.can_manage or duplicate.owner_zuid == owner):
        await audit_action(
            request,
            viewer.session,
            ACTION,
            duplicate.subscription_id,
            "refused: forbidden",
            None,
        )
        raise Forbidden(
            "only your organisation's billing owner can cancel the duplicate subscription",
            hint="ask the person who subscribed, or the vendor, to cancel it",
        )
    return duplicate
