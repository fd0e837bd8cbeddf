"""Zoho's OAuth access token for the Billing API: cached, refreshed early, one refresh at a time.

Zoho allows only a few refreshes a minute, so concurrent callers share one refresh, a token is
replaced ``token_refresh_margin_seconds`` before it expires, and after Zoho refuses refreshes for
being too frequent nobody asks again for a minute. A token a call refused right after a refresh (a
missing scope, ``billing_scopes``) is not refreshed again for other calls it is refused for while
it is younger than that minute: refreshing cannot add a scope. Neither the client secret, the
refresh token nor the access token is ever logged or put into an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import structlog

from broker.clients.http import json_body
from broker.config import BillingSettings
from broker.errors import BillingAuthError, BillingRateLimited, BillingUnavailable

log = structlog.get_logger(__name__)

REFRESH_LOCKOUT_SECONDS = 60.0


class AccessTokens:
    """The current access token, and the one way to get a new one."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: BillingSettings,
        *,
        clock: Callable[[], float],
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self._session = session
        self._settings = settings
        self._clock = clock
        self._timeout = timeout
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._refresh_lock = asyncio.Lock()
        self._refresh_blocked_until = 0.0
        self._issued_at = 0.0
        self._refused_fresh: str | None = None  # a fresh token a call refused (a scope)

    @property
    def token(self) -> str | None:
        return self._token

    def refused_although_fresh(self, token: str | None) -> None:
        """``token`` was refused right after it was issued: a scope it lacks, not its age."""
        self._refused_fresh = token

    def known_to_lack_scopes(self, token: str | None) -> bool:
        """True when a refusal of ``token`` cannot be cured by refreshing it: it was already
        refused fresh, and it is younger than a minute."""
        young = self._clock() - self._issued_at < REFRESH_LOCKOUT_SECONDS
        return token is not None and token == self._refused_fresh and young

    async def current(self) -> str:
        """A token believed valid, fetched first if there is none or it is about to expire."""
        if self._token is None or self._clock() >= self._token_expires_at:
            await self.refresh(stale=self._token)
        assert self._token is not None
        return self._token

    async def refresh(self, *, stale: str | None) -> None:
        """Fetch a new access token, unless another task already replaced ``stale``."""
        async with self._refresh_lock:
            if (
                self._token is not None
                and self._token != stale
                and self._clock() < self._token_expires_at
            ):
                return
            wait = self._refresh_blocked_until - self._clock()
            if wait > 0:
                # Zoho refused refreshes a moment ago: asking again now only prolongs it.
                raise BillingRateLimited(
                    "Zoho accounts limits token refreshes; wait a minute", retry_after=wait
                )
            form = {
                "refresh_token": self._settings.refresh_token.get_secret_value(),
                "client_id": self._settings.client_id,
                "client_secret": self._settings.client_secret.get_secret_value(),
                "grant_type": "refresh_token",
            }
            try:
                async with self._session.post(
                    f"{self._settings.resolved_accounts_url}/oauth/v2/token",
                    data=form,
                    timeout=self._timeout,
                ) as response:
                    status = response.status
                    body = await json_body(response)
            except TimeoutError:
                raise BillingUnavailable("Zoho accounts did not answer in time") from None
            except aiohttp.ClientError as exc:
                raise BillingUnavailable(
                    f"could not reach Zoho accounts ({type(exc).__name__})"
                ) from None
            token = body.get("access_token")
            if status >= 500:
                raise BillingUnavailable(f"Zoho accounts answered HTTP {status}")
            if not isinstance(token, str) or not token:
                # Zoho reports OAuth errors as HTTP 200 {"error": ...}; the code is safe to show.
                error = str(body.get("error") or f"HTTP {status}")[:100]
                if "too many requests" in str(body.get("error_description", "")).lower():
                    self._refresh_blocked_until = self._clock() + REFRESH_LOCKOUT_SECONDS
                    raise BillingRateLimited(
                        "Zoho accounts limits token refreshes; wait a minute",
                        retry_after=REFRESH_LOCKOUT_SECONDS,
                    )
                raise BillingAuthError(
                    f"Zoho accounts refused the refresh token ({error})",
                    hint="check billing.client_id, client_secret, refresh_token and data_centre",
                )
            lifetime = body.get("expires_in") or 3600
            expires_in = float(lifetime) if isinstance(lifetime, int | float | str) else 3600.0
            margin = min(self._settings.token_refresh_margin_seconds, expires_in / 2)
            self._token = token
            self._issued_at = self._clock()
            self._token_expires_at = self._clock() + expires_in - margin
            log.info("billing.token_refreshed", expires_in=expires_in)
