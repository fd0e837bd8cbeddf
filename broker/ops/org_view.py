"""The console's view of one org (``/ops/orgs/{zgid}``): both sides side by side. What the
broker holds (its subscriptions with their state and reason and the platform's last state, its
customers, deliveries and audit rows) and what billing holds, read live through the same bounded
look-up the page uses before selling (``delivery.org_billing_read``). When billing cannot be
asked, the view says so and shows the broker's side alone: never a 500, never a guess."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import structlog
from aiohttp import web

from broker.core.ids import is_user_id
from broker.delivery.org_billing_read import OrgInBilling, read_org_in_billing
from broker.errors import (
    BillingAuthError,
    BillingError,
    BillingRateLimited,
    InvalidIdentifier,
)
from broker.ops.support import operator_session, render
from broker.store.org_reads import OrgHeld, org_held
from broker.web.appkeys import billing_client_key, customer_sweep_key, store_key

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BillingSide:
    """Billing's answer, or why there is none (``problem``)."""

    org: OrgInBilling | None
    problem: str | None


def zgid_of(request: web.Request) -> str:
    """The org id in the path: digits only (it is shown and used in queries)."""
    zgid = request.match_info["zgid"]
    if not is_user_id(zgid):
        raise InvalidIdentifier(
            f"the org id {zgid[:40]!r} is not a zgid",
            hint="a zgid is digits only; follow an org link from a console list",
        )
    return zgid


async def org_view(request: web.Request) -> web.Response:
    session = operator_session(request)
    zgid = zgid_of(request)
    held = await request.app[store_key].read(partial(org_held, zgid=zgid))
    billing = await billing_side(request.app, zgid)
    return render(
        request,
        "ops_org.html",
        session,
        {"held": held, "billing": billing, "compare": compare(held, billing.org)},
    )


async def billing_side(app: web.Application, zgid: str) -> BillingSide:
    if billing_client_key not in app:
        return BillingSide(
            None,
            "Billing is not configured ([billing] is unset), so only the broker's side is shown.",
        )
    sweep = app.get(customer_sweep_key)
    try:
        org = await read_org_in_billing(app[store_key], app[billing_client_key], sweep, zgid)
    except BillingRateLimited as error:
        wait = error.retry_after if error.retry_after is not None else 60.0
        return BillingSide(
            None,
            f"Billing is busy (429); ask again in {round(wait)} s. Only "
            "the broker's side is shown.",
        )
    except BillingAuthError:
        log.error("billing.credentials_refused", where="ops.org_view")
        return BillingSide(
            None,
            "Billing refused the broker's credentials: fix the [billing] "
            "settings. Only the broker's side is shown.",
        )
    except BillingError as error:
        log.warning("ops.org_view_billing_failed", zgid=zgid, code=error.code)
        return BillingSide(
            None,
            "Billing could not be asked just now (" + error.code + "); "
            "reload in a minute. Only the broker's side is shown.",
        )
    return BillingSide(org, None)


@dataclass(frozen=True)
class Comparison:
    subscription_id: str
    in_broker: str | None  # the broker's stored status
    in_billing: str | None  # billing's status now
    note: str


def compare(held: OrgHeld, org: OrgInBilling | None) -> list[Comparison]:
    """One row per subscription either side knows, saying where they disagree."""
    if org is None:
        return []
    ours = {s.subscription_id: s for s in held.subscriptions}
    theirs = {s.subscription_id: s for s in org.subscriptions}
    rows = []
    for sid in sorted(ours.keys() | theirs.keys()):
        mine, billed = ours.get(sid), theirs.get(sid)
        if mine is None:
            note = (
                "billing has it, the broker does not (a lost webhook: reload the page or reconcile)"
            )
        elif billed is None:
            note = "the broker has it, billing's list for this org does not"
        elif (mine.status or "") != billed.status:
            note = "statuses differ: the broker's copy is older"
        elif mine.conflict:
            note = "a duplicate: nothing is sent to the platform for it"
        else:
            note = "agree"
        rows.append(
            Comparison(sid, mine.status if mine else None, billed.status if billed else None, note)
        )
    return rows
