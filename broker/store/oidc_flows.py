"""Started "Sign in with Zoho" flows: state, nonce, PKCE verifier and the browser's hints, kept
in the database until the browser comes back, and taken exactly once.

A flow is bound to the browser that started it by a random value in a short-lived cookie; only
its SHA-256 is stored, so a copy of the database cannot finish anyone's sign-in. Runs on the
store's writer thread (no I/O besides SQLite).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict

from broker.core.landing import Name, NumericId, Token
from broker.store.engine.tx import Tx
from broker.store.sql import number, text, text_or_none


class LandingHints(BaseModel):
    """What the browser said when the sign-in started. Unverified: the zgid is bound on the
    first verified visit only; names are for display; ids are looked up, never believed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zuid: NumericId | None = None  # only compared with the token's sub, for the log
    zgid: NumericId | None = None
    subscription_id: Token | None = None
    hosted_page_id: Token | None = None
    display_name: Name | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    company_name: Name | None = None


@dataclass(frozen=True)
class SignInFlow:
    state: str
    browser_hash: str
    nonce: str
    code_verifier: str | None
    redirect_uri: str
    hints: LandingHints
    created_at: float
    expires_at: float


def new_flow(
    *,
    browser: str,
    redirect_uri: str,
    hints: LandingHints,
    use_pkce: bool,
    now: float,
    max_age_seconds: float,
) -> SignInFlow:
    return SignInFlow(
        state=secrets.token_urlsafe(32),
        browser_hash=browser_hash(browser),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(48) if use_pkce else None,
        redirect_uri=redirect_uri,
        hints=hints,
        created_at=now,
        expires_at=now + max_age_seconds,
    )


def browser_hash(browser: str) -> str:
    return hashlib.sha256(browser.encode()).hexdigest()


def same_browser(flow: SignInFlow, browser: str | None) -> bool:
    return browser is not None and hmac.compare_digest(flow.browser_hash, browser_hash(browser))


def save_flow(db: Tx, flow: SignInFlow) -> None:
    """Store a started flow; flows nobody finished in time go at the same moment."""
    db.execute("DELETE FROM oidc_flows WHERE expires_at < ?", [flow.created_at])
    row = asdict(flow)
    row["hints"] = json.dumps(flow.hints.model_dump(exclude_none=True))
    db.execute(
        "INSERT INTO oidc_flows (state, browser_hash, nonce, code_verifier, redirect_uri, "
        "hints_json, created_at, expires_at) VALUES (:state, :browser_hash, :nonce, "
        ":code_verifier, :redirect_uri, :hints, :created_at, :expires_at)",
        row,
    )


def take_flow(db: Tx, state: str, now: float) -> SignInFlow | None:
    """The flow for ``state``, removed so it can never be used again; None if unknown or
    expired."""
    rows = db.select_all("DELETE FROM oidc_flows WHERE state = ? RETURNING *", [state])
    if not rows or number(rows[0], "expires_at") < now:
        return None
    row = rows[0]
    return SignInFlow(
        state=text(row, "state"),
        browser_hash=text(row, "browser_hash"),
        nonce=text(row, "nonce"),
        code_verifier=text_or_none(row, "code_verifier"),
        redirect_uri=text(row, "redirect_uri"),
        hints=LandingHints.model_validate_json(text(row, "hints_json")),
        created_at=number(row, "created_at"),
        expires_at=number(row, "expires_at"),
    )
