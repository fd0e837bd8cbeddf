"""Sign in with Zoho: the OpenID Connect client (docs/contracts.md §6.2) and the ID token's checks.

Owns talking to Zoho Accounts (discovery, JWKS, the code exchange) and deciding whether an ID
token proves who the user is. It never logs or returns a token, a code or the client secret.
An accounts server named by the browser (``accounts-server``) is used only if it is one of the
configured data centres' hosts: any other URL would let a link make us send the client secret
and the code to a host of the attacker's choosing.

    OidcError (Forbidden, 403)        the sign-in does not prove anything; start again
    OidcUnavailable (503)             Zoho Accounts could not be reached or answered nonsense
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.config import ACCOUNTS_HOSTS, DataCentre, OidcSettings
from broker.errors import BrokerError, Forbidden

log = structlog.get_logger(__name__)

ALGORITHMS = ["RS256"]  # Zoho signs with RS256; "none" and HMAC are never accepted
JWKS_MIN_REFRESH_SECONDS = 30.0  # an unknown kid refetches the keys at most this often
ZUID_PATTERN = r"^[0-9]{1,20}$"


class OidcError(Forbidden):
    code = "sign_in_failed"


class OidcUnavailable(BrokerError):
    status = 503
    code = "accounts_unavailable"


@dataclass(frozen=True)
class Provider:
    """What a data centre's discovery document says (only what we use)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None


@dataclass(frozen=True)
class TokenAnswer:
    """What the token endpoint answered that we use: the ID token to verify, and the user's
    access token (for Zoho's org API) when it gave one."""

    id_token: str
    access_token: str | None


@dataclass(frozen=True)
class VerifiedIdentity:
    """What a verified ID token proves: the zuid, and the email only if Zoho verified it."""

    zuid: str
    email: str | None
    name: str | None


def accounts_origin(host_or_url: str) -> str:
    return host_or_url if "://" in host_or_url else f"https://{host_or_url}"


def known_accounts_servers(settings: OidcSettings, default_dc: DataCentre) -> list[str]:
    """Every accounts server a sign-in may come back from: the configured one first."""
    servers = [settings.accounts_url or accounts_origin(_host(default_dc))]
    for dc in settings.data_centres:
        origin = accounts_origin(_host(dc))
        if origin not in servers:
            servers.append(origin)
    return servers


def _host(dc: DataCentre) -> str:
    return ACCOUNTS_HOSTS.get(dc, f"accounts.zoho.{dc}")


def choose_accounts_server(named: str | None, known: list[str]) -> str:
    """The server to exchange the code at: the browser's ``accounts-server`` only if known."""
    if named is None:
        return known[0]
    normalised = named.strip().rstrip("/")
    if normalised in known:
        return normalised
    raise OidcError(
        "the sign-in came back naming an accounts server this service does not use",
        hint="start again from the app's Subscription menu; if your Zoho account is in "
        "another data centre, ask the vendor to add it (landing.oidc.data_centres)",
    )


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    """Discovery and keys per accounts server, cached; the code exchange; the token checks."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: OidcSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._settings = settings
        self._clock = clock
        self._providers: dict[str, Provider] = {}
        self._keys: dict[str, tuple[KeySet, float]] = {}  # jwks_uri -> (keys, fetched at)

    async def provider(self, server: str) -> Provider:
        if server not in self._providers:
            document = await self._get_json(f"{server}/.well-known/openid-configuration")
            try:
                provider = Provider(
                    issuer=str(document["issuer"]),
                    authorization_endpoint=str(document["authorization_endpoint"]),
                    token_endpoint=str(document["token_endpoint"]),
                    jwks_uri=str(document["jwks_uri"]),
                    userinfo_endpoint=_text_or_none(document.get("userinfo_endpoint")),
                )
            except KeyError as missing:
                raise OidcUnavailable(
                    f"Zoho Accounts' discovery document lacks {missing}",
                    hint="try again later; if it persists, tell the vendor",
                ) from None
            if provider.issuer.rstrip("/") != server:
                # OpenID Discovery 1.0 §4.3: the issuer must be the server asked.
                raise OidcUnavailable(
                    "Zoho Accounts' discovery document names another issuer",
                    hint="tell the vendor: landing.oidc.accounts_url may be wrong",
                )
            self._providers[server] = provider
        return self._providers[server]

    async def exchange_code(
        self, server: str, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenAnswer:
        """The token endpoint's answer to our code; a refusal raises OidcError."""
        provider = await self.provider(server)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret.get_secret_value(),
            "redirect_uri": redirect_uri,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        body = await self._request_json("POST", provider.token_endpoint, data=form)
        id_token = body.get("id_token")
        if "error" in body or not isinstance(id_token, str):
            # Zoho answers refusals with 200 and {"error": ...}; the code is never logged.
            log.warning("oidc.code_refused", error=str(body.get("error", "no id_token"))[:80])
            raise OidcError(
                "Zoho did not accept this sign-in (it may have been used already or expired)",
                hint="start again from the app's Subscription menu",
            )
        return TokenAnswer(id_token, _text_or_none(body.get("access_token")))

    async def verify_id_token(self, server: str, token: str, *, nonce: str) -> VerifiedIdentity:
        """Check signature (RS256, the data centre's keys), iss, aud, exp/iat and nonce."""
        provider = await self.provider(server)
        try:
            keys = await self._keys_for(provider, token)
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            leeway = int(self._settings.leeway_seconds)
            registry = jwt.JWTClaimsRegistry(
                now=lambda: int(self._clock()),
                leeway=leeway,
                iss={"essential": True, "value": provider.issuer},
                aud={"essential": True, "value": self._settings.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as error:
            # Names the failed check (claim, signature, algorithm); never the token itself.
            reason = str(error) if isinstance(error, JoseError) else type(error).__name__
            log.warning("oidc.id_token_refused", reason=reason[:120])
            raise OidcError(
                "Zoho's answer could not be verified, so you were not signed in",
                hint="start again from the app's Subscription menu",
            ) from None
        return _identity(decoded.claims, self._settings.client_id)

    async def _keys_for(self, provider: Provider, token: str) -> KeySet:
        """The JWKS; fetched again (at most every 30 s) when the token names an unknown kid."""
        cached = self._keys.get(provider.jwks_uri)
        kid = _header_kid(token)
        now = self._clock()
        stale = cached is None or (
            kid is not None
            and not any(k.kid == kid for k in cached[0].keys)
            and now - cached[1] >= JWKS_MIN_REFRESH_SECONDS
        )
        if stale:
            document = await self._get_json(provider.jwks_uri)
            cached = (KeySet.import_key_set(document), now)  # type: ignore[arg-type]
            self._keys[provider.jwks_uri] = cached
        assert cached is not None
        return cached[0]

    async def _get_json(self, url: str) -> dict[str, object]:
        return await self._request_json("GET", url)

    async def _request_json(
        self, method: str, url: str, *, data: Mapping[str, str] | None = None
    ) -> dict[str, object]:
        timeout = aiohttp.ClientTimeout(total=self._settings.request_timeout_seconds)
        try:
            async with self._session.request(method, url, timeout=timeout, data=data) as response:
                if response.status >= 500:
                    raise OidcUnavailable(
                        f"Zoho Accounts answered {response.status}",
                        hint="try again in a minute",
                    )
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            log.warning("oidc.accounts_unreachable", method=method, path=_path(url))
            raise OidcUnavailable(
                "Zoho Accounts could not be reached or gave an unreadable answer",
                hint="try again in a minute",
            ) from None
        if not isinstance(body, dict):
            raise OidcUnavailable("Zoho Accounts gave an unreadable answer", hint="try again")
        return body


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _identity(claims: Mapping[str, object], client_id: str) -> VerifiedIdentity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not re.match(ZUID_PATTERN, sub):
        raise OidcError("Zoho's answer did not carry a user id we can read")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise OidcError("Zoho's answer was meant for another application")
    email = claims.get("email")
    # An email Zoho has not verified proves nothing: the session keeps none.
    verified = claims.get("email_verified") in (True, "true")
    name = claims.get("name")
    return VerifiedIdentity(
        zuid=sub,
        email=email if verified and isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
    )


def _header_kid(token: str) -> str | None:
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    except (ValueError, IndexError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _path(url: str) -> str:
    return url.split("?", 1)[0]
