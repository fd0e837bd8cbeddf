"""A frozen dataclass carried in a signed cookie, for the page's and the console's sessions.

itsdangerous' ``URLSafeTimedSerializer`` signs the dataclass's fields as JSON with HMAC and a
signed timestamp, refused after ``max_age_seconds``. Several keys verify and the last signs, so a
secret can be rotated without signing everyone out. The salt keeps one cookie's signature from
meaning anything for the other. Signed, not encrypted: it must hold nothing secret.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Generic, TypeVar

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

T = TypeVar("T")


class SignedCookieCodec(Generic[T]):
    """Signs ``T`` with the last of ``keys``; ``loads`` answers None for anything not genuine."""

    def __init__(
        self,
        kind: Callable[..., T],
        keys: Sequence[bytes],
        *,
        salt: str,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a signed cookie needs at least one key")

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._kind = kind
        self._serializer = URLSafeTimedSerializer(list(keys), salt=salt, signer=ClockedSigner)
        self._max_age = int(max_age_seconds)

    def dumps(self, value: T) -> str:
        fields: Any = asdict(value)  # type: ignore[call-overload]  # T is a dataclass
        return self._serializer.dumps(fields)

    def loads(self, cookie: str | None) -> T | None:
        """The value, or None if the cookie is missing, altered, malformed or too old."""
        if not cookie:
            return None
        try:
            return self._kind(**self._serializer.loads(cookie, max_age=self._max_age))
        except (BadSignature, TypeError, ValueError):
            return None


def token_matches(expected: str, presented: object) -> bool:
    """A form's CSRF token against the session's, in constant time; anything else is no."""
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())
