"""The Manage Subscription session: a signed cookie, and the CSRF token it carries.

The landing parameters are read once, then the browser is sent to a clean ``/manage`` with this
cookie, so ids stay out of the address bar, history and Referer. The cookie is signed (HMAC-SHA256),
not encrypted: it holds only what the user already sent us. It is HttpOnly, SameSite=Lax (the
return from the billing checkout is a top-level navigation) and Secure behind TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from aiohttp import web

from broker.errors import Forbidden

COOKIE_NAME = "broker_session"
COOKIE_PATH = "/manage"


@dataclass(frozen=True)
class Session:
    zuid: str
    zgid: str
    name: str
    email: str | None
    company: str | None
    csrf: str
    issued_at: float
    notice: str | None = None  # a one-time message for the next page ("Your plan was changed")

    def with_notice(self, notice: str | None) -> Session:
        return replace(self, notice=notice)


class SessionCodec:
    def __init__(
        self, secret: bytes, *, max_age_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._max_age = max_age_seconds
        self._clock = clock

    def new(
        self, *, zuid: str, zgid: str, name: str, email: str | None, company: str | None
    ) -> Session:
        return Session(zuid, zgid, name, email, company, secrets.token_urlsafe(24), self._clock())

    def dumps(self, session: Session) -> str:
        payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
        return f"{payload}.{_b64(self._sign(payload))}"

    def loads(self, value: str | None) -> Session | None:
        """The session, or None if the cookie is missing, altered, malformed or too old."""
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        try:
            given = base64.urlsafe_b64decode(signature + "==")
            if not hmac.compare_digest(given, self._sign(payload)):
                return None
            session = Session(**json.loads(base64.urlsafe_b64decode(payload + "==")))
        except (ValueError, TypeError):
            return None
        if self._clock() - session.issued_at > self._max_age:
            return None
        return session

    def _sign(self, payload: str) -> bytes:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def save_session(
    response: web.StreamResponse,
    codec: SessionCodec,
    session: Session,
    *,
    secure: bool,
    max_age_seconds: float,
) -> None:
    response.set_cookie(
        COOKIE_NAME,
        codec.dumps(session),
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=int(max_age_seconds),
    )


def check_csrf(session: Session, presented: object) -> None:
    """Every form carries the session's token; a missing or foreign one is refused."""
    if not isinstance(presented, str) or not hmac.compare_digest(
        presented.encode(), session.csrf.encode()
    ):
        raise Forbidden(
            "this form has expired or did not come from this page",
            hint="go back to the subscription page, reload it and try again",
        )
