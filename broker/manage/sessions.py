"""The Manage Subscription session: a signed cookie, and the CSRF token it carries.

The landing parameters are read once, then the browser is sent to a clean ``/manage`` with this
cookie, so ids stay out of the address bar, history and Referer. The cookie is signed, not
encrypted (itsdangerous' ``URLSafeTimedSerializer``: HMAC with a signed timestamp, refused after
``max_age``): it holds only what the user already sent us. Several keys verify, the newest signs,
so the secret can be rotated without signing everyone out. It is HttpOnly, SameSite=Lax (the
return from the billing checkout is a top-level navigation) and Secure behind TLS. The signing,
the cookie and the CSRF check are ``web.signed_cookies``, shared with the console.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from broker.web.signed_cookies import SignedCookie, SignedCookieCodec, check_form_token

# SameSite=Lax: the return from the billing checkout is a top-level navigation.
COOKIE = SignedCookie(
    name="broker_session", path="/manage", salt="broker.manage.session", same_site="Lax"
)
COOKIE_NAME = COOKIE.name


@dataclass(frozen=True)
class Session:
    zuid: str
    zgid: str
    name: str
    email: str | None
    company: str | None
    csrf: str
    notice: str | None = None  # a one-time message for the next page ("Your plan was changed")

    def with_notice(self, notice: str | None) -> Session:
        return replace(self, notice=notice)


class SessionCodec(SignedCookieCodec[Session]):
    """Signs sessions with the last of ``keys`` and accepts any of them (oldest first)."""

    def __init__(
        self,
        keys: Sequence[bytes],
        *,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(Session, keys, cookie=COOKIE, max_age_seconds=max_age_seconds, clock=clock)

    def new(
        self, *, zuid: str, zgid: str, name: str, email: str | None, company: str | None
    ) -> Session:
        return Session(zuid, zgid, name, email, company, secrets.token_urlsafe(24))


def check_csrf(session: Session, presented: object) -> None:
    """Every form carries the session's token; a missing or foreign one is refused."""
    check_form_token(
        session.csrf,
        presented,
        came_from="this page",
        hint="go back to the subscription page, reload it and try again",
    )
