"""Typed settings: the operator's whole interface to the broker.

Sources, strongest first: keyword arguments (tests), environment variables (``BROKER_`` prefix,
``__`` between section and key), the optional TOML file, then the defaults below. Nothing here
reads the environment at import time; ``broker.cli`` decides when settings are built.

This module holds ``Settings`` (the sections together, and the rules that span them) and the
loading; each section is a module of its own, named for it (``[store]`` is ``config.store``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from broker.config.billing import ACCOUNTS_HOSTS, BillingSettings, DataCentre
from broker.config.billing_rules import BillingRulesSettings, TaxDisplay, UnusedAmount
from broker.config.delivery import DeliverySettings
from broker.config.landing import LandingSettings, LandingVerification, OidcSettings
from broker.config.log import LogSettings
from broker.config.money_events import MoneyAction, MoneyEventSettings
from broker.config.ops import OpsSettings
from broker.config.plans import PausePolicy, PlansSettings
from broker.config.platform import PlatformSettings
from broker.config.reconcile import OnMissingInBilling, ReconcileSettings
from broker.config.retention import RetentionSettings
from broker.config.server import ServerSettings
from broker.config.store import POSTGRES_PREFIXES, SQLITE_PREFIX, StoreSettings
from broker.config.webhooks import WebhookSettings
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
