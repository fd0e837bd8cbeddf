"""``AccountsSimulator``: Zoho Accounts as an OpenID provider (docs/contracts.md §6.2), for tests
and the demo.

Routes: the discovery document, ``/oauth/v2/auth`` (a page where a simulated user presses
"Accept"; ``login_hint`` approves at once), ``/oauth/v2/token`` (``authorization_code`` grant:
client secret, redirect URI, single-use code, PKCE), the JWKS (an RSA key made at start),
``/oauth/user/info``, and Zoho CRM's Organization API ``/crm/v2/org`` (the org, with its zgid,
of the token's user; point ``landing.oidc.org_url`` at it). Like Zoho, token errors come back
as HTTP 200 with ``{"error": ...}``.

Faults (``fault``) make the next ID tokens wrong in one way each, so tests can try every forgery
the broker must refuse. Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from html import escape
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

TOKEN_TTL_SECONDS = 3600
CODE_TTL_SECONDS = 120


class Fault(StrEnum):
    """One way to make the ID token wrong; NONE issues honest tokens."""

    NONE = "none"
    FOREIGN_KEY = "foreign_key"  # signed by a key the JWKS does not publish
    WRONG_AUD = "wrong_aud"
    WRONG_ISS = "wrong_iss"
    EXPIRED = "expired"
    WRONG_NONCE = "wrong_nonce"
    ALG_NONE = "alg_none"  # unsigned
    HS256 = "hs256"  # HMAC with the client secret: the classic algorithm confusion
    EMAIL_UNVERIFIED = "email_unverified"
    NO_ID_TOKEN = "no_id_token"  # noqa: S105 - a fault's name, not a secret


@dataclass(frozen=True)
class SimUser:
    zuid: str
    email: str
    name: str
    email_verified: bool = True
    zgid: str | None = None  # the org Zoho's Organization API reports for this user, if any


@dataclass
class _Grant:
    user: SimUser
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    expires_at: float
    scopes: frozenset[str] = frozenset()


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class AccountsSimulator:
    client_id: str
    client_secret: str
    users: list[SimUser]
    # Redirect URIs registered for the client; the broker's port may be known only later.
    redirect_uris: set[str] = field(default_factory=set)
    location: str = "us"
    clock: Callable[[], float] = time.time
    fault: Fault = Fault.NONE
    origin: str = ""  # set when served; the issuer and every endpoint derive from it
    token_requests: int = 0
    org_requests: int = 0
    _key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "sim-1"}))
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, _Grant] = field(default_factory=dict)

    # -- the app -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/oauth/v2/auth", self._authorize)
        app.router.add_post("/oauth/v2/auth/approve", self._approve)
        app.router.add_post("/oauth/v2/token", self._token)
        app.router.add_get("/oauth/v2/keys", self._keys)
        app.router.add_get("/oauth/user/info", self._user_info)
        app.router.add_get("/crm/v2/org", self._org)
        app.router.add_post("/_sim/fault", self._set_fault)
        return app

    def _base(self, request: web.Request) -> str:
        return self.origin or f"{request.scheme}://{request.host}"

    async def _discovery(self, request: web.Request) -> web.Response:
        base = self._base(request)
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/oauth/v2/auth",
                "token_endpoint": f"{base}/oauth/v2/token",
                "userinfo_endpoint": f"{base}/oauth/user/info",
                "jwks_uri": f"{base}/oauth/v2/keys",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self._key.as_dict(private=False)]})

    # -- authorization -----------------------------------------------------------------------

    def _check_auth_request(self, fields: Any) -> str | None:
        """What is wrong with an authorization request, or None."""
        for name in ("client_id", "redirect_uri", "response_type", "state", "scope"):
            if len(fields.getall(name, [])) != 1:
                return f"{name} is missing or repeated"
        if fields["client_id"] != self.client_id:
            return "unknown client_id"
        if fields["response_type"] != "code":
            return "response_type must be code"
        if fields["redirect_uri"] not in self.redirect_uris:
            return "redirect_uri is not registered for this client"
        if "openid" not in fields["scope"].split():
            return "scope must include openid"
        method = fields.get("code_challenge_method")
        if fields.get("code_challenge") and method != "S256":
            return "code_challenge_method must be S256"
        return None

    async def _authorize(self, request: web.Request) -> web.Response:
        problem = self._check_auth_request(request.query)
        if problem:
            return web.Response(status=400, text=f"Invalid request: {problem}")
        hint = request.query.get("login_hint")
        user = next((u for u in self.users if hint in (u.email, u.zuid)), None)
        if hint and user:
            raise web.HTTPFound(self._grant(user, request.query))
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in request.query.items()
        )
        choices = "".join(
            f'<form method="post" action="/oauth/v2/auth/approve">{hidden}'
            f'<input type="hidden" name="zuid" value="{escape(u.zuid)}">'
            f'<button type="submit">Accept as {escape(u.name)} ({escape(u.email)})</button></form>'
            for u in self.users
        )
        deny = (
            f'<form method="post" action="/oauth/v2/auth/approve">{hidden}'
            '<input type="hidden" name="deny" value="1"><button type="submit">Deny</button></form>'
        )
        page = (
            "<!doctype html><title>Zoho Accounts (simulated)</title>"
            "<h1>Sign in to Zoho (simulated)</h1>"
            "<p>The app asks for your name, email address and user id.</p>"
            f"{choices}{deny}"
        )
        return web.Response(text=page, content_type="text/html")

    async def _approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        problem = self._check_auth_request(form)
        if problem:
            return web.Response(status=400, text=f"Invalid request: {problem}")
        redirect_uri, state = str(form["redirect_uri"]), str(form["state"])
        if form.get("deny"):
            query = urlencode({"error": "access_denied", "state": state})
            raise web.HTTPFound(f"{redirect_uri}?{query}")
        user = next((u for u in self.users if u.zuid == form.get("zuid")), None)
        if user is None:
            return web.Response(status=400, text="Invalid request: unknown user")
        raise web.HTTPFound(self._grant(user, form))

    def _grant(self, user: SimUser, fields: Any) -> str:
        """A fresh single-use code for ``user``; the address the browser is sent back to."""
        code = f"1000.{secrets.token_hex(16)}"
        self._codes[code] = _Grant(
            user,
            str(fields["redirect_uri"]),
            fields.get("nonce"),
            fields.get("code_challenge"),
            self.clock() + CODE_TTL_SECONDS,
            frozenset(str(fields["scope"]).replace(",", " ").split()),
        )
        query = {
            "state": fields["state"],
            "code": code,
            "location": self.location,
            "accounts-server": self.origin,
        }
        return f"{fields['redirect_uri']}?{urlencode(query)}"

    # -- tokens ------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        if fields.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"})
        if not (
            _same(fields.get("client_id"), self.client_id)
            and _same(fields.get("client_secret"), self.client_secret)
        ):
            return web.json_response({"error": "invalid_client"})
        grant = self._codes.pop(fields.get("code", ""), None)  # single use, even when refused
        if grant is None or grant.expires_at < self.clock():
            return web.json_response({"error": "invalid_code"})
        if fields.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_redirect_uri"})
        if grant.challenge is not None:
            verifier = fields.get("code_verifier", "")
            if _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
                return web.json_response({"error": "invalid_code_verifier"})
        access = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self._tokens[access] = grant
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
            "api_domain": "https://www.zohoapis.com",
        }
        if self.fault is not Fault.NO_ID_TOKEN:
            body["id_token"] = self.id_token(grant.user, grant.nonce, self._base(request))
        return web.json_response(body)

    def id_token(self, user: SimUser, nonce: str | None, issuer: str) -> str:
        """An ID token for ``user``, made wrong as the current fault says."""
        now = int(self.clock())
        fault = self.fault
        claims: dict[str, Any] = {
            "iss": "https://accounts.evil.example" if fault is Fault.WRONG_ISS else issuer,
            "aud": "1000.SOMEONEELSE" if fault is Fault.WRONG_AUD else self.client_id,
            "sub": user.zuid,
            "email": user.email,
            "email_verified": user.email_verified and fault is not Fault.EMAIL_UNVERIFIED,
            "name": user.name,
            "iat": now - (7200 if fault is Fault.EXPIRED else 0),
            "exp": now + (-3600 if fault is Fault.EXPIRED else TOKEN_TTL_SECONDS),
            "nonce": "forged-nonce" if fault is Fault.WRONG_NONCE else nonce,
        }
        if fault is Fault.ALG_NONE:
            header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        if fault is Fault.HS256:
            secret = OctKey.import_key(self.client_secret.encode())
            return jwt.encode({"alg": "HS256", "kid": "sim-1"}, claims, secret, ["HS256"])
        key = self._key
        if fault is Fault.FOREIGN_KEY:
            key = RSAKey.generate_key(2048, {"kid": "sim-1"})
        return jwt.encode({"alg": "RS256", "kid": "sim-1"}, claims, key, ["RS256"])

    async def _user_info(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self._tokens.get(token) if scheme == "Zoho-oauthtoken" else None
        if grant is None:
            return web.json_response({"error": "invalid_oauthtoken"}, status=401)
        user = grant.user
        return web.json_response(
            {"ZUID": user.zuid, "Email": user.email, "Display_Name": user.name}
        )

    async def _org(self, request: web.Request) -> web.Response:
        """Zoho CRM's Organization API (docs/contracts.md §6.2) for the token's user, refusing
        as Zoho does: 401 ``INVALID_TOKEN`` for an unknown token, 401 ``OAUTH_SCOPE_MISMATCH``
        without ``ZohoCRM.org.READ`` (or ``.ALL``), 204 when the user has no CRM org."""
        self.org_requests += 1
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self._tokens.get(token) if scheme == "Zoho-oauthtoken" else None
        if grant is None:
            return _crm_error(401, "INVALID_TOKEN", "invalid oauth token")
        if not grant.scopes & {"ZohoCRM.org.READ", "ZohoCRM.org.ALL"}:
            return _crm_error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
        if grant.user.zgid is None:
            return web.Response(status=204)
        org = {
            "id": f"9{grant.user.zgid}",
            "zgid": grant.user.zgid,
            "primary_zuid": grant.user.zuid,
            "company_name": f"Org {grant.user.zgid}",
        }
        return web.json_response({"org": [org]})

    async def _set_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            self.fault = Fault(body.get("fault"))
        except ValueError:
            return web.json_response({"error": f"fault must be one of {list(Fault)}"}, status=400)
        return web.json_response({"fault": self.fault})


def _crm_error(status: int, code: str, message: str) -> web.Response:
    body = {"code": code, "details": {}, "message": message, "status": "error"}
    return web.json_response(body, status=status)
