"""A frozen dataclass carried in a signed cookie, and the CSRF token it carries: one
implementation for the page's session and the console's.

itsdangerous' ``URLSafeTimedSerializer`` signs the dataclass's fields as JSON with HMAC and a
signed timestamp, refused after ``max_age_seconds``. Several keys verify and the last signs, so a
secret can be rotated without signing everyone out. Each cookie has its own name, path and salt
(``SignedCookie``), so one cookie's signature means nothing for the other. The cookie is always
HttpOnly, Secure when the browser reached us over TLS. Signed, not encrypted: it must hold
nothing secret. Every form carries the session's token, compared in constant time.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import structlog
from aiohttp import web
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from broker.errors import Forbidden
from broker.web.appkeys import settings_key

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SignedCookie:
    """Where a signed cookie lives: its name and path, the salt of its signatures, and when a
    browser sends it from another site (Lax: on top-level navigations; Strict: never)."""

    name: str
    path: str
    salt: str
    same_site: Literal["Lax", "Strict"]


class SignedCookieCodec(Generic[T]):
    """Signs ``T`` with the last of ``keys``; ``loads`` answers None for anything not genuine."""

    def __init__(
        self,
        kind: Callable[..., T],
        keys: Sequence[bytes],
        *,
        cookie: SignedCookie,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a signed cookie needs at least one key")

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._kind = kind
        self.cookie = cookie
        self._serializer = URLSafeTimedSerializer(
            list(keys), salt=cookie.salt, signer=ClockedSigner
        )
        self._max_age = int(max_age_seconds)

    def dumps(self, value: T) -> str:
        return self._serializer.dumps(asdict(value))

    def loads(self, cookie: str | None) -> T | None:
        """The value, or None if the cookie is missing, altered, malformed or too old."""
        if not cookie:
            return None
        try:
            return self._kind(**self._serializer.loads(cookie, max_age=self._max_age))
        except (BadSignature, TypeError, ValueError):
            return None

    def read(self, request: web.Request) -> T | None:
        """The request's cookie of this kind, if genuine and fresh."""
        return self.loads(request.cookies.get(self.cookie.name))

    def save(self, response: web.StreamResponse, value: T, *, secure: bool) -> None:
        """Set the cookie, kept by the browser as long as the signature stays valid."""
        response.set_cookie(
            self.cookie.name,
            self.dumps(value),
            path=self.cookie.path,
            httponly=True,
            samesite=self.cookie.same_site,
            secure=secure,
            max_age=self._max_age,
        )

    def forget(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.cookie.name, path=self.cookie.path)


def reached_over_tls(request: web.Request) -> bool:
    """Whether the browser reached us over TLS: directly, or through the TLS proxy the settings
    say we sit behind (only then is ``X-Forwarded-Proto`` believed). Cookies are Secure then."""
    return request.secure or (
        request.app[settings_key].server.behind_tls_proxy
        and request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    )


def token_matches(expected: str, presented: object) -> bool:
    """A form's CSRF token against the session's, in constant time; anything else is no."""
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())


def check_form_token(
    expected: str, presented: object, *, came_from: str, hint: str, **log_fields: str
) -> None:
    """Refuse a form whose token is missing or not the session's (403: expired, or not from
    ``came_from``, with ``hint`` saying what to do), with a log line carrying ``log_fields``."""
    if not token_matches(expected, presented):
        log.warning("csrf.refused", came_from=came_from, **log_fields)
        raise Forbidden(f"this form has expired or did not come from {came_from}", hint=hint)
