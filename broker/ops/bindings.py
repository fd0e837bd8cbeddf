"""Sign in with Zoho's binding requests in the console: users who named an org nothing proved
(docs/customer-page.md, "Sign in with Zoho"). The operator approves (the user's next sign-in
binds them, as a member) or refuses; each decision needs the operator's CSRF token and is
audited."""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web

from broker.core.ids import is_user_id
from broker.errors import ActionNotAllowed, InvalidPayload, NotFound
from broker.ops.access import check_csrf
from broker.ops.support import operator, operator_session, render
from broker.store.binding_requests import decide_request, pending_requests
from broker.store.ops_actions import OpsRefused
from broker.web.appkeys import clock_key, store_key

log = structlog.get_logger(__name__)
DECISIONS = {"approve": True, "refuse": False}


async def bindings(request: web.Request) -> web.Response:
    session = operator_session(request)
    pending = await request.app[store_key].read(pending_requests)
    return render(request, "ops_bindings.html", session, {"requests": pending})


async def decide(request: web.Request) -> web.StreamResponse:
    session = operator_session(request)
    form = await request.post()
    check_csrf(session, form.get("csrf"))
    zuid = request.match_info["zuid"]
    zgid, decision = (str(form.get(name, "")) for name in ("zgid", "decision"))
    problems = []
    if not is_user_id(zuid):
        problems.append("zuid: digits only, 1-20")
    if not is_user_id(zgid):
        problems.append("zgid: digits only, 1-20")
    if decision not in DECISIONS:
        problems.append("decision: approve or refuse")
    if problems:
        raise InvalidPayload(
            "the decision could not be read", hint="reload the list", problems=problems
        )
    who = operator(request, session)
    now = request.app[clock_key]()
    approve = DECISIONS[decision]
    try:
        decided = await request.app[store_key].write(
            lambda db: decide_request(db, who, zuid, zgid=zgid, approve=approve, now=now)
        )
    except LookupError as exc:
        raise NotFound(str(exc), hint="reload the list") from exc
    except OpsRefused as exc:
        raise ActionNotAllowed(str(exc), hint="reload the list") from exc
    log.info("ops.binding_decided", zuid=zuid, zgid=zgid, status=str(decided.status))
    notice = f"user {zuid}'s request for org {zgid}: {decided.status}"
    raise web.HTTPSeeOther("/ops/bindings?" + urlencode({"notice": notice}))
