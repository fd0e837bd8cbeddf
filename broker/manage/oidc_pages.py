"""The two routes of "Sign in with Zoho" (``landing.verify = "zoho"``): ``/manage`` starts the
sign-in, ``/manage/oidc/callback`` finishes it.

A visit to ``/manage`` with landing parameters, or without a page session, is sent to Zoho
Accounts; the browser's parameters are kept only as hints with the flow. The callback takes the
flow once, checks it came back to the browser that started it, exchanges the code and verifies
the ID token: the zuid is the token's ``sub``, the email the token's verified email. The zgid
(the hint, else the org Zoho reports, else the user's binding) is believed only with evidence
(``core.zgid_evidence``); without it the user's binding request waits for an operator and the
page shows nothing of the org. Nothing the browser says on its own binds, claims or reveals
anything.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Mapping
from functools import partial
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web
from pydantic import ValidationError

from broker.clients.oidc import (
    OidcClient,
    OidcError,
    choose_accounts_server,
    known_accounts_servers,
    pkce_challenge,
)
from broker.clients.zoho_org import ZohoOrgClient
from broker.config import LandingVerification
from broker.core.billing_events import describe_validation_errors
from broker.core.forms import text_pairs
from broker.core.identity import OTHER_ORG_HINT
from broker.core.landing import START_AGAIN, LandingParams, merge_landing
from broker.core.zgid_evidence import (
    BindingRequest,
    BindingRequestStatus,
    OrgNotProven,
    ZgidEvidence,
    binding_evidence,
    zgid_evidence,
)
from broker.errors import Forbidden, InvalidLanding
from broker.manage.appkeys import oidc_client_key, org_client_key, session_codec_key
from broker.manage.identity import start_session
from broker.manage.pages import LANDING_KEYS
from broker.manage.pages import manage as show_manage
from broker.store.binding_requests import ask_for_binding, evidence_facts
from broker.store.identity import user_row
from broker.store.oidc_flows import LandingHints, new_flow, same_browser, save_flow, take_flow
from broker.web.appkeys import clock_key, metrics_key, settings_key, store_key
from broker.web.signed_cookies import reached_over_tls

log = structlog.get_logger(__name__)

CALLBACK_PATH = "/manage/oidc/callback"
FLOW_COOKIE = "broker_signin"  # binds a started sign-in to this browser (login CSRF)
FLOW_COOKIE_PATH = "/manage/oidc"
_BROWSER_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


async def manage(request: web.Request) -> web.StreamResponse:
    """``/manage`` in zoho mode: landing parameters or no session start a sign-in."""
    sources: list[Mapping[str, str]] = [request.query]
    if request.method == "POST":
        sources.append(dict(text_pairs((await request.post()).items())))
    landing = any(key in LANDING_KEYS for source in sources for key in source)
    session = request.app[session_codec_key].read(request)
    if landing or session is None:
        return await begin(request, sources)
    return await show_manage(request)


async def begin(request: web.Request, sources: list[Mapping[str, str]]) -> web.StreamResponse:
    app = request.app
    settings = app[settings_key]
    oidc = settings.landing.oidc
    assert oidc is not None  # the zoho routes are only added with [landing.oidc]
    hints = parse_hints(sources)
    server = _servers(request)[0]
    provider = await app[oidc_client_key].provider(server)
    existing = request.cookies.get(FLOW_COOKIE, "")
    browser = existing if _BROWSER_VALUE.match(existing) else secrets.token_urlsafe(32)
    flow = new_flow(
        browser=browser,
        redirect_uri=redirect_uri(request),
        hints=hints,
        use_pkce=oidc.use_pkce,
        now=app[clock_key](),
        max_age_seconds=oidc.flow_max_age_seconds,
    )
    await app[store_key].write(partial(save_flow, flow=flow))
    query = {
        "client_id": oidc.client_id,
        "response_type": "code",
        "redirect_uri": flow.redirect_uri,
        "scope": oidc.scopes,
        "state": flow.state,
        "nonce": flow.nonce,
    }
    if flow.code_verifier is not None:
        query |= {"code_challenge": pkce_challenge(flow.code_verifier)}
        query |= {"code_challenge_method": "S256"}
    log.info("oidc.started", zgid=hints.zgid, subscription_id=hints.subscription_id)
    response = web.Response(
        status=303, headers={"Location": f"{provider.authorization_endpoint}?{urlencode(query)}"}
    )
    response.set_cookie(
        FLOW_COOKIE,
        browser,
        path=FLOW_COOKIE_PATH,
        httponly=True,
        samesite="Lax",  # the return from Zoho is a top-level navigation: Lax sends it
        secure=reached_over_tls(request),
        max_age=int(oidc.flow_max_age_seconds),
    )
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    """Zoho Accounts sends the browser back here with ``code`` and ``state`` (or ``error``)."""
    app = request.app
    query = request.query
    for name in ("state", "code", "error", "accounts-server", "location"):
        if len(query.getall(name, [])) > 1:
            raise InvalidLanding(f"the sign-in answer gives {name} twice", hint=START_AGAIN)
    state = query.get("state", "")
    if not state or len(state) > 128:
        raise InvalidLanding("the sign-in answer carries no state", hint=START_AGAIN)
    flow = await app[store_key].write(partial(take_flow, state=state, now=app[clock_key]()))
    if flow is None:
        log.warning("oidc.refused", reason="unknown_or_used_state")
        raise OidcError("this sign-in has expired or was already used", hint=START_AGAIN)
    if not same_browser(flow, request.cookies.get(FLOW_COOKIE)):
        log.warning("oidc.refused", reason="other_browser")
        raise OidcError("this sign-in was started in another browser", hint=START_AGAIN)
    error = query.get("error")
    if error is not None:
        log.info("oidc.refused", reason="provider_error", error=error[:40])
        if error == "access_denied":
            raise OidcError(
                "you declined to share your Zoho identity, so the page cannot show your "
                "subscription",
                hint="open the page again and press Accept on Zoho's sign-in page",
            )
        raise OidcError(f"Zoho Accounts did not sign you in ({error[:40]})", hint=START_AGAIN)
    code = query.get("code", "")
    if not code or len(code) > 512:
        raise InvalidLanding("the sign-in answer carries no code", hint=START_AGAIN)
    server = choose_accounts_server(query.get("accounts-server"), _servers(request))
    client = app[oidc_client_key]
    tokens = await client.exchange_code(
        server, code=code, redirect_uri=flow.redirect_uri, code_verifier=flow.code_verifier
    )
    identity = await client.verify_id_token(server, tokens.id_token, nonce=flow.nonce)
    hints = flow.hints
    if hints.zuid is not None and hints.zuid != identity.zuid:
        log.warning("oidc.browser_claimed_other_zuid", zuid=identity.zuid, claimed=hints.zuid)
    access = tokens.access_token
    org_zgid = None
    if isinstance(access, str) and access:
        org_zgid = await app[org_client_key].org_zgid(server, access)
    zgid = hints.zgid or org_zgid or await _bound_zgid(request, identity.zuid)
    if zgid is None:
        raise InvalidLanding(
            "we do not know your organisation yet",
            hint=START_AGAIN + " (the first visit must name your organisation)",
        )
    evidence = await _evidence(request, identity.zuid, zgid, identity.email, org_zgid)
    params = LandingParams(
        zuid=identity.zuid,
        zgid=zgid,
        email=identity.email,
        display_name=identity.name or hints.display_name,
        first_name=hints.first_name,
        last_name=hints.last_name,
        company_name=hints.company_name,
        subscription_id=hints.subscription_id,
        hosted_page_id=hints.hosted_page_id,
    )
    response = await start_session(
        request, params, verified_by=LandingVerification.ZOHO, zgid_evidence=str(evidence)
    )
    response.del_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return response


def parse_hints(sources: list[Mapping[str, str]]) -> LandingHints:
    """The landing parameters (docs/contracts.md §2, in every form) as unverified hints."""
    values = merge_landing(sources, ignore=frozenset({"email"}))  # the token's email counts
    try:
        return LandingHints.model_validate(values)
    except ValidationError as exc:
        raise InvalidLanding(
            "the Manage Subscription link has invalid details",
            hint=START_AGAIN,
            problems=describe_validation_errors(exc),
        ) from None


async def _evidence(
    request: web.Request, zuid: str, zgid: str, email: str | None, org_zgid: str | None
) -> ZgidEvidence:
    """What proves ``zuid`` belongs to ``zgid``; without anything, the user's binding request
    is recorded for an operator and the visit is refused, showing nothing of the org."""
    app = request.app
    store = app[store_key]
    facts = await store.read(
        partial(evidence_facts, zuid=zuid, zgid=zgid, email=email, org_zgid=org_zgid)
    )
    evidence = zgid_evidence(facts)
    if evidence is not None:
        return evidence
    bound = facts.binding
    if bound is not None and bound.zgid != zgid and binding_evidence(bound) is not None:
        # Proven to belong elsewhere: no request to join another org on the side.
        log.warning("oidc.zgid_unproven", zuid=zuid, zgid=zgid, reason="bound_to_another_org")
        raise Forbidden("this user belongs to another organisation", hint=OTHER_ORG_HINT)
    asked = BindingRequest(
        zuid=zuid,
        zgid=zgid,
        email=email,
        display_name=None,
        requested_at=app[clock_key](),
        status=BindingRequestStatus.PENDING,
    )
    held = await store.write(partial(ask_for_binding, request=asked))
    app[metrics_key].landing_visits.labels("refused").inc()
    log.warning(
        "oidc.zgid_unproven",
        zuid=zuid,
        zgid=zgid,
        org_api_zgid=org_zgid,
        request_status=str(held.status),
    )
    if held.status == BindingRequestStatus.REFUSED:
        raise OrgNotProven(
            "we could not confirm that your Zoho account belongs to this organisation, and the "
            "vendor has declined the request, so this page shows nothing of it",
            hint="ask your organisation's Zoho administrator to add you to the organisation, "
            "or contact the vendor",
        )
    raise OrgNotProven(
        "we could not confirm that your Zoho account belongs to this organisation, so this "
        "page shows nothing of it",
        hint="ask your organisation's Zoho administrator to open this page first, or wait for "
        "the vendor to approve your request (it has been sent to them), then open the page "
        "again from the app",
    )


async def _bound_zgid(request: web.Request, zuid: str) -> str | None:
    row = await request.app[store_key].read(partial(user_row, zuid=zuid))
    return row.zgid if row else None


def redirect_uri(request: web.Request) -> str:
    public = request.app[settings_key].landing.public_url
    return f"{public or request.url.origin()}{CALLBACK_PATH}"


def _servers(request: web.Request) -> list[str]:
    settings = request.app[settings_key]
    assert settings.landing.oidc is not None
    default_dc = settings.billing.data_centre if settings.billing else "com"
    return known_accounts_servers(settings.landing.oidc, default_dc)


async def oidc_context(app: web.Application) -> AsyncIterator[None]:
    """The OIDC client and its own HTTP session, for the app's lifetime."""
    oidc = app[settings_key].landing.oidc
    assert oidc is not None
    session = aiohttp.ClientSession(raise_for_status=False)
    app[oidc_client_key] = OidcClient(session, oidc, clock=app[clock_key])
    app[org_client_key] = ZohoOrgClient(session, oidc)
    yield
    await session.close()


__all__ = ["CALLBACK_PATH", "callback", "manage", "oidc_context"]
