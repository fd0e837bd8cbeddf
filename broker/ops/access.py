"""Who may use the console: one operator credential (a scrypt hash in ``ops.password_hash``),
its own signed cookie (name ``broker_ops``, path ``/ops``, its own key and salt), and a CSRF
token on every form. A customer's ``/manage`` cookie means nothing here, and this one nothing
there: different names, paths, keys and salts.

The cookie names a server-side session (``store.ops_sessions``): signing out deletes it, and a
session made under another password hash is not live, so a copied cookie stops working at
sign-out and when the operator's password changes, not only when it expires.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import structlog

from broker.config import Settings
from broker.core.operator_password import verify_password
from broker.ops.hashing_pool import HashingPool
from broker.web.signed_cookies import SignedCookie, SignedCookieCodec, check_form_token

log = structlog.get_logger(__name__)

# SameSite=Strict: the console is never entered from another site's link with a session.
COOKIE = SignedCookie(name="broker_ops", path="/ops", salt="broker.ops.session", same_site="Strict")
COOKIE_NAME = COOKIE.name
COOKIE_PATH = COOKIE.path


@dataclass(frozen=True)
class OpsSession:
    operator: str
    csrf: str
    # Names the server-side record; a cookie made before records existed has none: refused.
    sid: str


class OpsSessionCodec(SignedCookieCodec[OpsSession]):
    """Signs the console's cookie; refused after ``max_age_seconds`` or with another key."""

    def __init__(
        self,
        keys: Sequence[bytes],
        *,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            OpsSession, keys, cookie=COOKIE, max_age_seconds=max_age_seconds, clock=clock
        )

    def new(self, operator: str) -> OpsSession:
        return OpsSession(operator, secrets.token_urlsafe(24), secrets.token_urlsafe(24))


def session_key(session: OpsSession) -> str:
    """The record's key: a digest of the cookie's id, so the table alone opens no session."""
    return hashlib.sha256(session.sid.encode()).hexdigest()


def credential_of(settings: Settings) -> str:
    """A digest of today's password hash: a session made under another one is not live."""
    stored = settings.ops.password_hash
    material = stored.get_secret_value() if stored else ""
    return hashlib.sha256(b"broker.ops.credential\0" + material.encode()).hexdigest()


def codec_for(settings: Settings, clock: Callable[[], float]) -> OpsSessionCodec:
    secret = settings.ops.session_secret
    key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
    return OpsSessionCodec([key], max_age_seconds=settings.ops.session_max_age_seconds, clock=clock)


async def password_matches(pool: HashingPool, settings: Settings, password: str) -> bool:
    """scrypt costs tens of milliseconds of CPU: run it on the console's own hashing threads
    (``HashingBusy`` when they are full), never on the event loop or the default executor."""
    stored = settings.ops.password_hash
    if stored is None:
        return False
    return await pool.run(partial(verify_password, password, stored.get_secret_value()))


def check_csrf(session: OpsSession, presented: object) -> None:
    check_form_token(
        session.csrf,
        presented,
        came_from="the console",
        hint="reload the console page and try again",
        operator=session.operator,
    )
