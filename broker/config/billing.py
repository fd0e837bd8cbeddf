"""The ``[billing]`` section: Zoho Billing API access and where each data centre lives."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from broker.config.base import Section, http_url

ACCOUNTS_HOSTS = {"ca": "accounts.zohocloud.ca"}  # every other data centre: accounts.zoho.{dc}
DataCentre = Literal["com", "eu", "in", "com.au", "jp", "ca", "uk", "sa", "com.cn"]


class BillingSettings(Section):
    """Zoho Billing API access (docs/contracts.md §4); needed by the Manage Subscription page."""

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
    # A hard stop on pages read of one plans or add-ons list (200 items a page), should billing
    # never say it is done; reaching it is logged (billing.list_cut_short).
    max_list_pages: int = Field(100, ge=1, le=10_000)

    @field_validator("base_url", "accounts_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

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
