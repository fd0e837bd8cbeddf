"""Zoho's Organization API read with the signed-in user's own access token: the org (zgid) Zoho
itself says the user belongs to (docs/contracts.md §6.2).

``GET {org_url}`` with ``Authorization: Zoho-oauthtoken ...`` answers ``{"org": [{"zgid": ...}]}``.
Every refusal (a token without the scope, no CRM org, an error) or an unreadable answer is "Zoho
did not say": the caller then needs other evidence, so nothing here raises. The token is never
logged; only the URL is sent it, and that URL comes from the settings, never from a browser.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import structlog

from broker.config import OidcSettings
from broker.core.ids import is_user_id

log = structlog.get_logger(__name__)

ORG_PATH = "/crm/v2/org"


def default_org_url(accounts_server: str) -> str | None:
    """The CRM Organization API of the data centre whose accounts server signed the user in:
    ``https://accounts.zoho.{dc}`` -> ``https://www.zohoapis.{dc}``, and Canada's
    ``accounts.zohocloud.ca`` -> ``www.zohoapis.ca``. None for any other server."""
    parts = urlsplit(accounts_server)
    host = parts.hostname or ""
    if parts.scheme != "https" or parts.port is not None:
        return None
    if host == "accounts.zohocloud.ca":
        return f"https://www.zohoapis.ca{ORG_PATH}"
    if host.startswith("accounts.zoho."):
        return f"https://www.zohoapis.{host.removeprefix('accounts.zoho.')}{ORG_PATH}"
    return None


class ZohoOrgClient:
    """Reads the user's org with their access token; ``None`` whenever Zoho does not say."""

    def __init__(self, session: aiohttp.ClientSession, settings: OidcSettings) -> None:
        self._session = session
        self._settings = settings

    def url_for(self, accounts_server: str) -> str | None:
        return self._settings.org_url or default_org_url(accounts_server)

    async def org_zgid(self, accounts_server: str, access_token: str) -> str | None:
        url = self.url_for(accounts_server)
        if url is None:
            log.info("oidc.org_not_read", reason="no_org_url")
            return None
        timeout = aiohttp.ClientTimeout(total=self._settings.request_timeout_seconds)
        headers = {"Authorization": f"Zoho-oauthtoken {access_token}"}
        try:
            async with self._session.get(url, headers=headers, timeout=timeout) as response:
                status = response.status
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            log.warning("oidc.org_not_read", reason="unreachable_or_unreadable", url=url)
            return None
        zgid = _zgid(body) if status == 200 else None
        if zgid is None:
            # 401 INVALID_TOKEN / OAUTH_SCOPE_MISMATCH, 204 (no org), or an answer without one.
            code = body.get("code") if isinstance(body, dict) else None
            log.info("oidc.org_not_read", reason="refused", status=status, code=str(code)[:40])
        return zgid


def _zgid(body: object) -> str | None:
    if not isinstance(body, dict):
        return None
    orgs = body.get("org")
    if not isinstance(orgs, list) or len(orgs) != 1 or not isinstance(orgs[0], dict):
        return None  # none, or several orgs: not one answer
    value = orgs[0].get("zgid")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if is_user_id(text) else None
