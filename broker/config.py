"""Typed settings: the operator's whole interface to the broker.

Sources, strongest first: keyword arguments (tests), environment variables (``BROKER_`` prefix,
``__`` between section and key), the optional TOML file, then the defaults below. Nothing here
reads the environment at import time; ``broker.cli`` decides when settings are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from broker.secret_env import EnvironSource, resolve_secret_files


class _Section(BaseModel):
    # A misspelt key must fail loudly, not leave a default silently in force.
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Closes the request body at this size: Zoho's payloads are a few kilobytes.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Behind a TLS proxy, trust X-Forwarded-Proto for cookie and redirect decisions.
    behind_tls_proxy: bool = False


class StoreSettings(_Section):
    path: Path = Path("broker.db")
    # FULL survives power loss, NORMAL only process crashes; group commit keeps FULL affordable.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Most write jobs folded into one transaction (one fsync) when requests arrive together.
    group_commit_max: int = Field(256, ge=1, le=10_000)


class PlatformSettings(_Section):
    app_domain: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    zapikey: SecretStr
    base_url: str | None = None
    request_timeout_seconds: float = Field(15.0, gt=0)
    # contracts.md §1 is unsure whether custom_pricing_json is an object or a JSON string.
    custom_pricing_format: Literal["object", "string"] = "object"
    # How the platform refuses a Cancel of a subscription it no longer holds is unknown
    # (contracts.md §1): a repeated Cancel counts as done only on these statuses, or on a 2xx/4xx
    # body whose message or code holds one of these phrases (case and _ - ignored). 401 and 403
    # never count. See core.platform_answers.means_already_gone.
    cancel_gone_statuses: list[int] = Field(default_factory=lambda: [404, 410])
    cancel_gone_markers: list[str] = Field(
        default_factory=lambda: [
            "subscription not found",
            "subscription does not exist",
            "no such subscription",
            "no active subscription",
            "no subscription",
            "already cancelled",
            "already canceled",
        ]
    )

    @field_validator("zapikey")
    @classmethod
    def _zapikey_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or f"https://{self.app_domain}.zohoplatform.com"


class WebhookSettings(_Section):
    # Keys accepted besides the platform zapikey, so a new key can be rolled out without downtime.
    extra_zapikeys: list[SecretStr] = Field(default_factory=list)
    # When set, X-Zoho-Webhook-Signature is required and checked (contracts.md §3).
    signing_secret: SecretStr | None = None
    signature_encoding: Literal["hex", "base64"] = "hex"
    # A billing snapshot whose updated_time is further ahead of our clock than this is refused:
    # kept, it would make every later real event look stale.
    future_tolerance_seconds: float = Field(24 * 3600.0, gt=0)

    @field_validator("signing_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 12 <= len(value.get_secret_value()) <= 50:
            raise ValueError("Zoho accepts signing secrets of 12 to 50 characters")
        return value


class PlansSettings(_Section):
    storage_addon_monthly: str | None = None
    storage_addon_yearly: str | None = None
    # Other add-on codes -> keys of custom_pricing_json (for example licence types).
    addon_pricing_keys: dict[str, str] = Field(default_factory=dict)
    # What a paused subscription means on the platform: "keep" leaves it untouched (safe: a pause
    # is temporary and cancel + re-add would churn the customer's data); "cancel" cancels it and
    # adds it again on resume.
    on_pause: Literal["keep", "cancel"] = "keep"
    # After dunning, Zoho may leave a subscription "unpaid"; the vendor decides what that means.
    on_unpaid: Literal["keep", "cancel"] = "keep"


class DeliverySettings(_Section):
    concurrency: int = Field(32, ge=1, le=512)
    initial_backoff_seconds: float = Field(2.0, gt=0)
    max_backoff_seconds: float = Field(3600.0, gt=0)
    jitter_seconds: float = Field(1.0, ge=0)
    # Retryable failures keep being retried for this long before a delivery is dead-lettered.
    retry_horizon_seconds: float = Field(3 * 24 * 3600.0, gt=0)
    # A claimed delivery whose process died is taken again after this long.
    lease_seconds: float = Field(60.0, gt=0)
    # Upper bound for an idle worker's nap; new work wakes it at once.
    poll_interval_seconds: float = Field(1.0, gt=0)
    max_retry_after_seconds: float = Field(3600.0, gt=0)


ACCOUNTS_HOSTS = {"ca": "accounts.zohocloud.ca"}  # every other data centre: accounts.zoho.{dc}
DataCentre = Literal["com", "eu", "in", "com.au", "jp", "ca", "uk", "sa", "com.cn"]


class BillingSettings(_Section):
    """Zoho Billing API access (contracts.md §4); needed by the Manage Subscription page."""

    data_centre: DataCentre = "com"
    base_url: str | None = None  # default https://www.zohoapis.{data_centre}/billing/v1
    accounts_url: str | None = None  # default https://accounts.zoho.{data_centre}
    organization_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr
    request_timeout_seconds: float = Field(15.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=10)
    initial_backoff_seconds: float = Field(0.5, gt=0)
    max_backoff_seconds: float = Field(8.0, gt=0)
    max_retry_after_seconds: float = Field(30.0, gt=0)
    # Refresh this long before the token expires, so no call races an expiry.
    token_refresh_margin_seconds: float = Field(300.0, ge=0)
    # The page re-reads an org's subscriptions from billing at most this often; concurrent
    # views of one org share one read. 0 re-reads on every view (still one read at a time).
    read_cache_seconds: float = Field(30.0, ge=0)
    # Billing calls one page session may make at once, and how fast that allowance refills;
    # past it, the overview shows what is stored and actions ask the visitor to wait.
    session_call_burst: int = Field(10, ge=1, le=1000)
    session_calls_per_minute: float = Field(10.0, gt=0)

    @field_validator("base_url", "accounts_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or f"https://www.zohoapis.{self.data_centre}/billing/v1"

    @property
    def checkout_origins(self) -> list[str]:
        """Where hosted checkout pages live: a form may redirect there and nowhere else."""
        if self.base_url:
            scheme, _, rest = self.base_url.partition("://")
            return [f"{scheme}://{rest.split('/', 1)[0]}"]
        if self.data_centre == "ca":
            return ["https://*.zohocloud.ca"]
        return [f"https://*.zoho.{self.data_centre}"]

    @property
    def resolved_accounts_url(self) -> str:
        host = ACCOUNTS_HOSTS.get(self.data_centre, f"accounts.zoho.{self.data_centre}")
        return self.accounts_url or f"https://{host}"


class LandingVerification(StrEnum):
    """How a Manage Subscription visit proves who the user is (README, threat model)."""

    SIGNED = "signed"  # the Vertical Solution signs the landing parameters (HMAC, our format)
    ZOHO = "zoho"  # "Sign in with Zoho": OpenID Connect against Zoho Accounts
    NONE = "none"  # believe the browser: an explicit, loudly logged opt-in for trials only


class OidcSettings(_Section):
    """Sign in with Zoho (contracts.md §6.2): a client registered in Zoho's API console."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # Default: the accounts server of billing's data centre, else https://accounts.zoho.com.
    accounts_url: str | None = None
    scopes: str = "openid email profile"
    # PKCE (S256) is sent by default; contracts.md §6.2 is unsure Zoho accepts it.
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

    @field_validator("accounts_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class LandingSettings(_Section):
    # How visits are verified. Unset: "signed" when link_secret is set, otherwise none is
    # configured and /manage refuses visits (webhooks keep working). See ``verification``.
    verify: LandingVerification | None = None
    # Releasing a parked subscription to the org that visits the page requires the visitor's
    # (verified) email to match the billing customer's.
    require_email_match: bool = True
    # Signed-link mode: landing parameters carry `ts`, `nonce` and `sig` (HMAC-SHA256 of the
    # canonical string of every other parameter). See the README for the exact format.
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
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

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


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BROKER_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    platform: PlatformSettings
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    plans: PlansSettings = Field(default_factory=PlansSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    billing: BillingSettings | None = None
    landing: LandingSettings = Field(default_factory=LandingSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _lease_outlives_a_call(self) -> Settings:
        if self.delivery.lease_seconds <= self.platform.request_timeout_seconds:
            raise ValueError(
                "delivery.lease_seconds must exceed platform.request_timeout_seconds, "
                "or a slow call could be taken over and sent twice"
            )
        return self

    def secrets(self) -> list[str]:
        """Every secret value, for the log redactor."""
        values = [self.platform.zapikey, *self.webhooks.extra_zapikeys]
        if self.webhooks.signing_secret is not None:
            values.append(self.webhooks.signing_secret)
        if self.billing is not None:
            values += [self.billing.client_secret, self.billing.refresh_token]
        values += [v for v in (self.landing.link_secret, self.landing.session_secret) if v]
        values += self.landing.old_session_secrets
        if self.landing.oidc is not None:
            values.append(self.landing.oidc.client_secret)
        return [v.get_secret_value() for v in values if v.get_secret_value()]

    def webhook_keys(self) -> list[bytes]:
        return [
            k.get_secret_value().encode()
            for k in [self.platform.zapikey, *self.webhooks.extra_zapikeys]
        ]


def load_settings(config_file: Path | None, environ: Mapping[str, str]) -> Settings:
    """Build settings from ``environ`` (``_FILE`` variables read here, never put back into the
    process environment) layered over an optional TOML file."""
    resolved = resolve_secret_files(environ)

    class FileBackedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [
                init_settings,
                EnvironSource(settings_cls, resolved),
            ]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    return FileBackedSettings()
