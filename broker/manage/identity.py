"""Who opens the Manage Subscription page: verifying a visit, and starting a session from it.

Modes (``landing.verification``, docs/security.md):

- ``signed``: the link's signature, ``ts`` and single-use ``nonce`` (``link_signing``, ``nonces``).
- ``zoho``: Sign in with Zoho; its own module calls ``start_session`` once the ID token checks out.
- ``none``: the browser is believed. An explicit opt-in, logged as a warning on every visit; such
  visits never claim a parked subscription nor supply a zgid (``visits.record_landing_visit``).
- unset: nothing is configured, so visits are refused with a page telling the operator what to
  set (503: the service is not set up, not the visitor's fault); webhooks keep working.

``start_session`` is the one way in: a session exists only for a visit verified by some mode.
"""

from __future__ import annotations

from functools import partial

import aiohttp_jinja2
import structlog
from aiohttp import web
from multidict import MultiDict

from broker.config import LandingVerification, Settings
from broker.core.landing import LandingParams, parse_landing
from broker.core.link_signing import LinkRefusal, SignedLinkRefused, verify_link
from broker.manage.appkeys import session_codec_key
from broker.manage.sessions import Session
from broker.store.nonces import consume_nonce
from broker.store.visits import record_landing_visit
from broker.web.appkeys import clock_key, metrics_key, settings_key, store_key, worker_key
from broker.web.signed_cookies import reached_over_tls

log = structlog.get_logger(__name__)

NOT_CONFIGURED = (
    "no landing verification is configured, so the Manage Subscription page refuses visits: set "
    "BROKER_LANDING__LINK_SECRET (signed links) or BROKER_LANDING__VERIFY (signed, zoho, or none)"
)
UNVERIFIED = (
    'landing.verify = "none": the Manage Subscription page believes whatever ids the browser '
    "sends (anyone who knows a user's zuid and zgid can open it as them); use it only for trials"
)


def verification_warning(settings: Settings) -> str | None:
    """What ``check-config`` prints and ``serve`` logs about the landing mode, if anything."""
    mode = settings.landing.verification
    if mode is None:
        return NOT_CONFIGURED
    if mode is LandingVerification.NONE:
        return UNVERIFIED
    return None


async def log_verification_mode(app: web.Application) -> None:
    """At start-up (``serve``, the demo): say which mode is in force, loudly if it is unsafe."""
    settings = app[settings_key]
    mode = settings.landing.verification
    warning = verification_warning(settings)
    if warning:
        log.warning("landing.verification", mode=str(mode or "unset"), message=warning)
    else:
        log.info("landing.verification", mode=str(mode))


def refuse_unconfigured(request: web.Request) -> web.Response:
    """The page a visit gets while no verification is configured: what the operator must do."""
    request.app[metrics_key].landing_visits.labels("refused").inc()
    log.warning("landing.refused_unconfigured", message=NOT_CONFIGURED)
    return aiohttp_jinja2.render_template("unconfigured.html", request, {}, status=503)


async def signed_visit(request: web.Request, pairs: list[tuple[str, str]]) -> LandingParams:
    """The landing parameters of a signed link, once its signature, ts and nonce check out."""
    app = request.app
    landing = app[settings_key].landing
    assert landing.link_secret is not None  # the settings refuse signed mode without it
    now = app[clock_key]()
    try:
        link = verify_link(
            pairs,
            secret=landing.link_secret.get_secret_value(),
            now=now,
            tolerance_seconds=landing.link_tolerance_seconds,
        )
        fresh = await app[store_key].write(
            partial(
                consume_nonce,
                nonce=link.nonce,
                ts=link.ts,
                now=now,
                tolerance_seconds=landing.link_tolerance_seconds,
            )
        )
        if not fresh:
            raise SignedLinkRefused(LinkRefusal.REPLAYED_NONCE)
    except SignedLinkRefused as refused:
        app[metrics_key].landing_visits.labels("refused").inc()
        # Never the signature or the secret; the parameter names say what was sent.
        log.warning(
            "landing.link_refused",
            reason=str(refused.reason),
            parameters=sorted({name for name, _ in pairs if name != "sig"})[:30],
        )
        raise
    return parse_landing([link.params])


def unverified_visit(request: web.Request, pairs: list[tuple[str, str]]) -> LandingParams:
    """``verify = "none"``: believe the browser, and say so on every visit."""
    params = parse_landing([MultiDict(pairs)])
    log.warning("landing.unverified_visit", zuid=params.zuid, zgid=params.zgid, mode="none")
    return params


async def start_session(
    request: web.Request,
    params: LandingParams,
    verified_by: LandingVerification,
    zgid_evidence: str | None = None,
) -> web.StreamResponse:
    """Record a visit verified by ``verified_by`` and sign the browser in to the user's org
    (``zgid_evidence``: what proved the zgid, in Sign in with Zoho mode)."""
    app = request.app
    settings = app[settings_key]
    result = await app[store_key].write(
        partial(
            record_landing_visit,
            params=params,
            settings=settings,
            now=app[clock_key](),
            verified_by=verified_by,
            zgid_evidence=zgid_evidence,
        )
    )
    if result.queued:
        app[worker_key].wake()
    app[metrics_key].landing_visits.labels("entered").inc()
    log.info(
        "landing.visit",
        zuid=params.zuid,
        zgid=params.zgid,
        verified_by=str(verified_by),
        zgid_evidence=zgid_evidence,
        subscription_id=params.subscription_id,
        outcome=result.outcome,
        released=len(result.released),
    )
    session = app[session_codec_key].new(
        zuid=params.zuid,
        zgid=params.zgid,
        name=params.name,
        email=params.email,
        company=params.company_name,
    )
    # A clean address: the ids leave the address bar, the history and any Referer.
    response = web.Response(status=303, headers={"Location": "/manage"})
    remember(request, response, session)
    return response


def remember(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """Set the session cookie; Secure when the browser reached us over TLS."""
    request.app[session_codec_key].save(response, session, secure=reached_over_tls(request))
