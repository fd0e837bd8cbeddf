"""Login CSRF on the landing POST: another site must not sign a visitor in to an org it chose.

A browser says where a form post comes from (``Origin``, and ``Sec-Fetch-Site`` in current
browsers). A landing post is accepted from the broker's own origin, from the Vertical Solution's
``https://{app_domain}.zohoplatform.com`` and from ``landing.allowed_origins``; one that names
another origin, or is ``cross-site``/``same-site`` without naming an allowed one, is refused.
A request with neither header (not a browser) cannot be a login CSRF and is let through; signed
links still protect it. GET stays allowed (a top-level navigation from the app): there the
signed link's ``ts`` and single-use ``nonce`` are the protection. Pure apart from reading headers.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from broker.config import Settings
from broker.errors import Forbidden
from broker.web.signed_cookies import reached_over_tls

CROSS_SITE = ("cross-site", "same-site")

log = structlog.get_logger(__name__)


class LoginOriginRefused(Forbidden):
    code = "landing_origin_refused"


def allowed_origins(settings: Settings, own_origin: str) -> list[str]:
    """Exact origins and ``scheme://*.domain`` patterns a landing post may come from."""
    public = settings.landing.public_url
    own = [own_origin] + ([_origin_of(public)] if public else [])
    platform = f"https://{settings.platform.app_domain}.zohoplatform.com".lower()
    return [*own, platform, *settings.landing.allowed_origins]


def origin_allowed(origin: str, patterns: list[str]) -> bool:
    origin = origin.strip().lower().rstrip("/")
    for pattern in (p.strip().lower().rstrip("/") for p in patterns):
        scheme, _, host = pattern.partition("://")
        if host.startswith("*."):
            given_scheme, _, given_host = origin.partition("://")
            label, _, parent = given_host.partition(".")
            if given_scheme == scheme and label and "." not in label and parent == host[2:]:
                return True
        elif origin == pattern:
            return True
    return False


def check_landing_post(request: web.Request, settings: Settings) -> None:
    """Refuse a landing form posted from a site that is not allowed to sign users in."""
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    # One reading of "reached over TLS" for the cookie's Secure flag and this origin check.
    scheme = "https" if reached_over_tls(request) else request.scheme
    own = f"{scheme}://{request.host}".lower()
    if origin is not None:
        if origin_allowed(origin, allowed_origins(settings, own)):
            return
        log.warning("landing.origin_refused", origin=origin[:200], sec_fetch_site=fetch_site)
        raise LoginOriginRefused(
            "this sign-in was posted from a site that may not open this page",
            hint="open the subscription page from the app's Subscription menu; if the app posts "
            "from its own address, the operator can allow it in landing.allowed_origins",
            origin=origin[:200],
        )
    if fetch_site in CROSS_SITE:
        log.warning("landing.origin_refused", origin=None, sec_fetch_site=fetch_site)
        raise LoginOriginRefused(
            "this sign-in came from another site, which may not open this page",
            hint="open the subscription page from the app's Subscription menu",
        )


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}".lower()
