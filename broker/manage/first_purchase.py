"""A new org's first purchase in Sign in with Zoho mode: only a zgid Zoho's Organization API or an
operator proved (or a vendor-signed link) may start one (``core.zgid_evidence``). A billing
customer cannot vouch for an org that has none yet, and nothing weaker may open a subscription
in an org's name. Signed-link and none modes keep their own rules."""

from __future__ import annotations

from functools import partial

import structlog
from aiohttp import web

from broker.config import LandingVerification
from broker.core.zgid_evidence import OrgNotProven, binding_evidence, may_start_an_org
from broker.manage.sessions import Session
from broker.store.binding_requests import org_is_known
from broker.store.identity import user_row
from broker.web.appkeys import settings_key, store_key

log = structlog.get_logger(__name__)


async def require_proven_new_org(request: web.Request, session: Session) -> None:
    """Refuse (403) a zoho-mode purchase for an org the broker does not know yet unless the
    user's binding to it was proven by Zoho's org API, an operator, or a signed link."""
    if request.app[settings_key].landing.verification is not LandingVerification.ZOHO:
        return
    store = request.app[store_key]
    if await store.read(partial(org_is_known, zgid=session.zgid)):
        return
    user = await store.read(partial(user_row, zuid=session.zuid))
    evidence = binding_evidence(user) if user and user.zgid == session.zgid else None
    if may_start_an_org(evidence):
        return
    log.warning(
        "manage.first_purchase_refused",
        zuid=session.zuid,
        zgid=session.zgid,
        evidence=str(evidence) if evidence else None,
    )
    raise OrgNotProven(
        "your organisation has no subscription yet, and only someone Zoho confirms as a member "
        "of it (or whom the vendor approved) may buy its first one",
        hint="ask your organisation's Zoho administrator to subscribe, or ask the vendor to "
        "approve your access, then open the page again from the app",
    )
