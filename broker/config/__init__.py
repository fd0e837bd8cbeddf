"""Typed settings: the operator's whole interface to the broker.

Sources, strongest first: keyword arguments (tests), environment variables (``BROKER_`` prefix,
``__`` between section and key), the optional TOML file, then the defaults below. Nothing here
reads the environment at import time; ``broker.cli`` decides when settings are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from broker.config.access import MoneyAction, MoneyEventSettings, OldPauseKey, PausePolicy
from broker.config.base import Section, http_url
from broker.config.billing import ACCOUNTS_HOSTS, BillingSettings, DataCentre
from broker.config.billing_rules import BillingRulesSettings, TaxDisplay, UnusedAmount
from broker.config.landing import LandingSettings, LandingVerification, OidcSettings
from broker.config.ops import OpsSettings
from broker.config.reconcile import OnMissingInBilling, ReconcileSettings
from broker.config.retention import RetentionSettings
from broker.secret_env import EnvironSource, resolve_secret_files

__all__ = [
    "ACCOUNTS_HOSTS",
    "POSTGRES_PREFIXES",
    "SQLITE_PREFIX",
    "BillingRulesSettings",
    "BillingSettings",
    "DataCentre",
    "DeliverySettings",
    "LandingSettings",
    "LandingVerification",
    "LogSettings",
    "MoneyAction",
    "MoneyEventSettings",
    "OidcSettings",
    "OnMissingInBilling",
    "OpsSettings",
    "PausePolicy",
    "PlansSettings",
    "PlatformSettings",
    "ReconcileSettings",
    "RetentionSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TaxDisplay",
    "UnusedAmount",
    "WebhookSettings",
    "config_file",
    "load_settings",
]


SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Closes the request body at this size: Zoho's payloads are a few kilobytes.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # A body still arriving this long after the request began is answered 408 and the connection
    # closed: without it, a client that stalls mid-body holds a connection for as long as it likes.
    body_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Behind a TLS proxy, trust X-Forwarded-Proto for cookie and redirect decisions.
    behind_tls_proxy: bool = False


class StoreSettings(Section):
    """Where the broker keeps its state: a SQLite file (one process) or PostgreSQL (replicas).

    ``url`` is ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or
    ``postgresql://user@host:port/db``. Unset, it is the SQLite file at ``path``. A URL may hold
    a password, so it is a secret: give it with ``BROKER_STORE__URL_FILE`` in production.
    """

    url: SecretStr | None = None
    path: Path = Path("broker.db")
    # FULL survives power loss, NORMAL only process crashes; group commit keeps FULL affordable.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Most write jobs folded into one transaction (one fsync) when requests arrive together.
    group_commit_max: int = Field(256, ge=1, le=10_000)
    # PostgreSQL: connections (and threads running store jobs) per process.
    pool_size: int = Field(10, ge=1, le=200)
    # PostgreSQL: how long to wait for a connection before answering 503.
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _url_names_a_backend(self) -> StoreSettings:
        if self.url is None:
            return self
        url = self.url.get_secret_value()
        if url.startswith(SQLITE_PREFIX):
            if len(url) == len(SQLITE_PREFIX):
                raise ValueError("store.url sqlite:/// needs a file path after it")
            self.path = Path(url.removeprefix(SQLITE_PREFIX))
            self.url = None
        elif not url.startswith(POSTGRES_PREFIXES):
            raise ValueError(
                "store.url must start with sqlite:/// (a file) or postgresql:// (a server)"
            )
        return self

    def secrets(self) -> list[str]:
        """The URL and its password (a URL in a log line may be re-quoted or cut short)."""
        url = self.postgres_url
        if url is None:
            return []
        password = urlsplit(url).password
        return [url, *([unquote(password), password] if password else [])]

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL URL, or None when the store is the SQLite file at ``path``."""
        return None if self.url is None else self.url.get_secret_value()


class PlatformSettings(Section):
    app_domain: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    zapikey: SecretStr
    base_url: str | None = None
    # The app's billing product (docs/contracts.md §3/§4): a subscription of it whose plan code
    # does not map is "unmapped_plan", one of another product "ignored". Unset, the broker learns
    # it from billing's plans for the mapped plan codes.
    product_id: str | None = Field(None, pattern=r"^[0-9]{1,32}$")
    request_timeout_seconds: float = Field(15.0, gt=0)
    # docs/contracts.md §1 is unsure whether custom_pricing_json is an object or a JSON string.
    custom_pricing_format: Literal["object", "string"] = "object"
    # docs/contracts.md §1 does not say which no_of_users the platform accepts. A subscription
    # whose plan quantity is below this is parked with the reason (never sent), so a quantity
    # of 0 waits for the operator instead of ending as a refused call, a dead letter. 0 sends
    # every quantity as billing has it.
    min_users: int = Field(1, ge=0)
    # How the platform refuses a Cancel of a subscription it no longer holds is unknown
    # (docs/contracts.md §1): a repeated Cancel counts as done only on these statuses, or on a
    # 2xx/4xx body whose message, code or details string IS one of these phrases, whole (case,
    # _ -, surrounding spaces and a final full stop ignored; never a phrase inside a longer
    # message). 401 and 403 never count. See core.platform_answers.means_already_gone.
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
            "subscription already cancelled",
            "subscription already canceled",
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
        return http_url(value)

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or f"https://{self.app_domain}.zohoplatform.com"


class WebhookSettings(Section):
    # Keys accepted besides the platform zapikey, so a new key can be rolled out without downtime.
    extra_zapikeys: list[SecretStr] = Field(default_factory=list)
    # When set, X-Zoho-Webhook-Signature is required and checked (docs/contracts.md §3).
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


class PlansSettings(OldPauseKey):
    storage_addon_monthly: str | None = None
    storage_addon_yearly: str | None = None
    # Other add-on codes -> keys of custom_pricing_json (for example licence types).
    addon_pricing_keys: dict[str, str] = Field(default_factory=dict)
    # What a pause means for the app (broker/config/access.py): "none" (not chosen: no pause is
    # offered on the page), "keep" (the app keeps working, no platform call) or "suspend" (Cancel
    # at pause, Add at resume; the app may remove the org's data on a Cancel).
    pause_policy: PausePolicy = PausePolicy.NONE
    # After dunning, Zoho may leave a subscription "unpaid"; the vendor decides what that means.
    on_unpaid: Literal["keep", "cancel"] = "keep"


class DeliverySettings(Section):
    # Calls on the wire not yet known to be slow.
    concurrency: int = Field(32, ge=1, le=512)
    # A call still on the wire after this long stops counting against ``concurrency`` and moves
    # to the slow share, so orgs whose calls hang cannot take every slot. Each call still ends
    # at platform.request_timeout_seconds.
    slow_call_seconds: float = Field(5.0, gt=0)
    # The slow share: at most this many slow calls at once. A call that turns slow when it is
    # full is cut short and retried later, like a timed-out call (it may have been applied).
    slow_calls: int = Field(32, ge=0, le=512)
    initial_backoff_seconds: float = Field(2.0, gt=0)
    max_backoff_seconds: float = Field(3600.0, gt=0)
    jitter_seconds: float = Field(1.0, ge=0)
    # Retryable failures keep being retried for this long before a delivery is dead-lettered.
    retry_horizon_seconds: float = Field(3 * 24 * 3600.0, gt=0)
    # A claimed delivery whose process died is taken again after this long. A live worker
    # renews the leases of the deliveries it holds, so only a dead (or stalled) one loses them.
    lease_seconds: float = Field(60.0, gt=0)
    # After the store was unavailable, a worker takes back no other worker's expired lease
    # until the store has been back this long: those leases ran out while nobody could write,
    # and their holders renew them (or record their answers) within a few seconds.
    outage_takeback_grace_seconds: float = Field(15.0, ge=0)
    # Upper bound for an idle worker's nap; new work wakes it at once.
    poll_interval_seconds: float = Field(1.0, gt=0)
    max_retry_after_seconds: float = Field(3600.0, gt=0)


class LogSettings(Section):
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
    money_events: MoneyEventSettings = Field(default_factory=MoneyEventSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    billing: BillingSettings | None = None
    billing_rules: BillingRulesSettings = Field(default_factory=BillingRulesSettings)
    landing: LandingSettings = Field(default_factory=LandingSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
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
        values += [v for v in (self.ops.password_hash, self.ops.session_secret) if v]
        found = [v.get_secret_value() for v in values if v.get_secret_value()]
        return found + self.store.secrets()

    def webhook_keys(self) -> list[bytes]:
        return [
            k.get_secret_value().encode()
            for k in [self.platform.zapikey, *self.webhooks.extra_zapikeys]
        ]


CONFIG_VARIABLE = "BROKER_CONFIG"


def config_file(given: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The TOML file to read: ``--config``, else ``BROKER_CONFIG``, else none."""
    if given is not None:
        return given
    return Path(environ[CONFIG_VARIABLE]) if environ.get(CONFIG_VARIABLE) else None


def load_settings(config_file: Path | None, environ: Mapping[str, str]) -> Settings:
    """Build settings from ``environ`` layered over an optional TOML file.

    ``environ`` is only read: ``_FILE`` variables are resolved into a copy (never put back into
    the process environment, so no child inherits a secret), and a ``PORT`` assigned by the host
    (Procfile platforms) stands for ``BROKER_SERVER__PORT`` unless that is set.
    """
    resolved = dict(resolve_secret_files(environ))
    if resolved.get("PORT") and not resolved.get("BROKER_SERVER__PORT"):
        resolved["BROKER_SERVER__PORT"] = resolved["PORT"]

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
