"""The Zoho accounts token endpoint: refresh token in, short-lived access token out.

Like Zoho it answers bad credentials with HTTP 200 and ``{"error": ...}``, and refuses more than
five refreshes a minute for one refresh token. The refresh token carries the scopes it was
granted (``scopes.py``); every access token issued from it carries them too. Tokens and secrets
are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .scopes import ALL_SCOPES

REFRESHES_PER_MINUTE = 5
TOO_MANY = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. "
    "Please try again after some time.",
}


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())


class TokenIssuer:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        ttl_seconds: int,
        scopes: Collection[str] = ALL_SCOPES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scopes = frozenset(scopes)
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._ttl = ttl_seconds
        self._clock = clock
        # access token -> (monotonic expiry, the scopes it carries)
        self._issued: dict[str, tuple[float, frozenset[str]]] = {}
        self._recent: deque[float] = deque()  # when the last refreshes were granted
        self.requests = 0

    def exchange(self, fields: Mapping[str, str], api_domain: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one token request."""
        self.requests += 1
        if fields.get("grant_type") != "refresh_token":
            return 200, {"error": "unsupported_grant_type"}
        client_ok = _same(fields.get("client_id"), self._client_id)
        secret_ok = _same(fields.get("client_secret"), self._client_secret)
        if not (client_ok and secret_ok):
            return 200, {"error": "invalid_client"}
        if not _same(fields.get("refresh_token"), self._refresh_token):
            return 200, {"error": "invalid_code"}
        now = self._clock()
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        if len(self._recent) >= REFRESHES_PER_MINUTE:
            return 400, dict(TOO_MANY)
        self._recent.append(now)
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self._issued[token] = (now + self._ttl, self._scopes)
        return 200, {
            "access_token": token,
            "expires_in": self._ttl,
            "api_domain": api_domain,
            "token_type": "Bearer",
        }

    def is_valid(self, token: str) -> bool:
        issued = self._issued.get(token)
        return issued is not None and self._clock() < issued[0]

    def scopes_of(self, token: str) -> frozenset[str]:
        """The scopes a valid ``token`` carries (none for an unknown one)."""
        issued = self._issued.get(token)
        return issued[1] if issued is not None else frozenset()

    def grant(self, scopes: Collection[str]) -> None:
        """The refresh token now carries ``scopes`` (as if generated again); tokens already
        issued keep theirs, as Zoho's do."""
        self._scopes = frozenset(scopes)

    def expire_all(self) -> None:
        self._issued.clear()
