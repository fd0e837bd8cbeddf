"""The ``[landing]`` section: how the Manage Subscription page verifies visits, signs sessions."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, field_validator, model_validator

from broker.config.base import Section, http_url
from broker.config.billing import DataCentre


class LandingVerification(StrEnum):
    """How a Manage Subscription visit proves who the user is (docs/security.md)."""

    SIGNED = "signed"  # the Vertical Solution signs the landing parameters (HMAC, our format)
    ZOHO = "zoho"  # "Sign in with Zoho": OpenID Connect against Zoho Accounts
    NONE = "none"  # believe the browser: an explicit, loudly logged opt-in for trials only


class OidcSettings(Section):
    """Sign in with Zoho (docs/contracts.md §6.2): a client registered in Zoho's API console."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # Default: the accounts server of billing's data centre, else https://accounts.zoho.com.
    accounts_url: str | None = None
    # ZohoCRM.org.READ lets the broker read the user's own org (its zgid) with their token: the
    # evidence that binds a zgid (docs/customer-page.md, Sign in with Zoho; docs/contracts.md §6.2).
    scopes: str = "openid email profile ZohoCRM.org.READ"
    # Zoho's Organization API, read with the signed-in user's access token; its answer's
    # org[0].zgid proves the user's org. Unset: the CRM API of the data centre the user signed
    # in at (https://www.zohoapis.{dc}/crm/v2/org); with a custom accounts_url and no org_url,
    # no org is read and a zgid needs other evidence.
    org_url: str | None = None
    # PKCE (S256) is sent by default; docs/contracts.md §6.2 is unsure Zoho accepts it.
    use_pkce: bool = True
    # How long a started sign-in (state, nonce, PKCE verifier) may take to come back.
    flow_max_age_seconds: float = Field(600.0, gt=0)
    # Allowed clock skew when checking the ID token's iat/exp.
    leeway_seconds: float = Field(60.0, ge=0)
    request_timeout_seconds: float = Field(10.0, gt=0)
    # Other data centres whose users may sign in: Zoho sends a user of another data centre back
    # with `accounts-server` naming it, and the code must be exchanged there. Only these hosts
    # (and accounts_url) are ever contacted.
    data_centres: list[DataCentre] = Field(default_factory=list)

    @field_validator("accounts_url", "org_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)


class LandingSettings(Section):
    # How visits are verified. Unset: "signed" when link_secret is set, otherwise none is
    # configured and /manage refuses visits (webhooks keep working). See ``verification``.
    verify: LandingVerification | None = None
    # Releasing a parked subscription to the org that visits the page requires the visitor's
    # (verified) email to match the billing customer's.
    require_email_match: bool = True
    # Signed-link mode: landing parameters carry `ts`, `nonce` and `sig` (HMAC-SHA256 of the
    # canonical string of every other parameter). docs/customer-page.md has the exact format.
    link_secret: SecretStr | None = None
    link_tolerance_seconds: float = Field(300.0, gt=0)
    # Origins besides the broker's own and https://{app_domain}.zohoplatform.com from which a
    # landing form may be posted (login CSRF); "https://*.example.com" allows one subdomain level.
    allowed_origins: list[str] = Field(default_factory=list)
    # Sign in with Zoho (verify = "zoho").
    oidc: OidcSettings | None = None
    # Signs the page's session cookie. Unset: a random key per process (sessions end on restart).
    session_secret: SecretStr | None = None
    # Former session secrets, still accepted (never used to sign) while they rotate out.
    old_session_secrets: list[SecretStr] = Field(default_factory=list)
    session_max_age_seconds: float = Field(8 * 3600.0, gt=0)
    # Only the org's billing owner may change the subscription; others see it read-only.
    members_can_manage: bool = False
    # Where the browser reaches the broker, for the checkout's return address. Unset: taken
    # from the request (set it behind a proxy that rewrites Host).
    public_url: str | None = None
    # How long the plan list read from billing is reused.
    catalog_ttl_seconds: float = Field(300.0, ge=0)

    @field_validator("link_secret", "session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("old_session_secrets")
    @classmethod
    def _each_long_enough(cls, values: list[SecretStr]) -> list[SecretStr]:
        for value in values:
            cls._long_enough(value)
        return values

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            scheme, _, host = value.partition("://")
            if scheme not in ("http", "https") or not host or "/" in host.rstrip("/"):
                raise ValueError(f"{value!r} is not an origin such as https://app.example.com")
        return values

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        return http_url(value)

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> LandingSettings:
        if self.verify is LandingVerification.SIGNED and self.link_secret is None:
            raise ValueError('verify = "signed" needs link_secret (BROKER_LANDING__LINK_SECRET)')
        if self.verify is LandingVerification.ZOHO and self.oidc is None:
            raise ValueError(
                'verify = "zoho" needs an [landing.oidc] section with client_id and '
                "client_secret (BROKER_LANDING__OIDC__CLIENT_ID, __CLIENT_SECRET)"
            )
        return self

    def session_keys(self) -> list[bytes]:
        """Keys that verify the session cookie, oldest first; the last signs (empty: unset)."""
        if self.session_secret is None:
            return []
        keys = [*self.old_session_secrets, self.session_secret]
        return [key.get_secret_value().encode() for key in keys]

    @property
    def verification(self) -> LandingVerification | None:
        """The mode in force; None means nothing is configured and /manage refuses visits."""
        if self.verify is not None:
            return self.verify
        return LandingVerification.SIGNED if self.link_secret is not None else None
