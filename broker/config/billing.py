"""The ``[billing]`` section: Zoho Billing API access and where each data centre lives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from broker.config.base import Section, http_url, origin_url

# Zoho Billing's data centres: the eight its API introduction lists (US, EU, IN, AU, JP, CA, CN,
# SA; https://www.zoho.com/billing/api/v1/introduction/). No Zoho Billing source lists a UK one.
DataCentre = Literal["com", "eu", "in", "com.au", "jp", "ca", "sa", "com.cn"]


@dataclass(frozen=True)
class DataCentreHosts:
    """Where one data centre's Zoho Billing lives (docs/zoho-setup.md has the same table)."""

    api: str  # [doc] the Billing API introduction's "Base API URI"
    accounts: str  # [doc] Zoho's multi-DC pages (CRM, Lens): accounts.zoho.{tld}, Canada's apart
    # Hosted checkout pages: [doc] billing.zoho.com in specs/hosted-pages.yml's ``url`` example;
    # other data centres by the same pattern [unsure], so the whole Zoho domain is allowed.
    hosted_pages: str
    portal: str  # the customer portal, billing.zohosecure.{tld} [unsure: seen, not documented]


def _hosts(tld: str, zoho: str = "zoho") -> DataCentreHosts:
    return DataCentreHosts(
        api=f"https://www.zohoapis.{tld}",
        accounts=f"https://accounts.{zoho}.{tld}",
        hosted_pages=f"https://*.{zoho}.{tld}",
        portal=f"https://billing.zohosecure.{tld}",
    )


DATA_CENTRES: dict[str, DataCentreHosts] = {
    "com": _hosts("com"),
    "eu": _hosts("eu"),
    "in": _hosts("in"),
    "com.au": _hosts("com.au"),
    "jp": _hosts("jp"),
    "ca": _hosts("ca", zoho="zohocloud"),  # [doc] accounts.zohocloud.ca; its API www.zohoapis.ca
    "sa": _hosts("sa"),
    "com.cn": _hosts("com.cn"),
}
ACCOUNTS_HOSTS = {
    code: hosts.accounts.removeprefix("https://") for code, hosts in DATA_CENTRES.items()
}


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
    # Looking before selling: an org the customer index does not know makes the page sweep
    # billing's customer list (GET /customers, then each unknown customer in full), at most once
    # per this many seconds and with at most this many full reads per sweep.
    customer_sweep_seconds: float = Field(300.0, ge=0)
    customer_sweep_max_reads: int = Field(200, ge=0, le=10_000)
    # Billing calls one page session may make at once, and how fast that allowance refills;
    # past it, the overview shows what is stored and actions ask the visitor to wait.
    session_call_burst: int = Field(10, ge=1, le=1000)
    session_calls_per_minute: float = Field(10.0, gt=0)
    # Origins the page's forms may also be sent on to: a domain the vendor mapped Zoho's hosted
    # pages to (e.g. "https://pay.example.com"), added to the Content-Security-Policy.
    extra_checkout_origins: list[str] = Field(default_factory=list, max_length=20)
    # A hard stop on pages read of one plans or add-ons list (200 items a page), should billing
    # never say it is done; reaching it is logged (billing.list_cut_short).
    max_list_pages: int = Field(100, ge=1, le=10_000)

    @field_validator("base_url", "accounts_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("extra_checkout_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [origin_url(value) for value in values]

    @property
    def hosts(self) -> DataCentreHosts:
        return DATA_CENTRES[self.data_centre]

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or f"{self.hosts.api}/billing/v1"

    @property
    def checkout_origins(self) -> list[str]:
        """Where hosted checkout pages live: a form may redirect there and nowhere else. With
        ``base_url`` set (a stand-in billing), its origin replaces the data centre's."""
        if self.base_url:
            scheme, _, rest = self.base_url.partition("://")
            found = [f"{scheme}://{rest.split('/', 1)[0]}"]
        else:
            found = [self.hosts.hosted_pages, self.hosts.portal]
        return found + [o for o in self.extra_checkout_origins if o not in found]

    @property
    def resolved_accounts_url(self) -> str:
        return self.accounts_url or self.hosts.accounts
