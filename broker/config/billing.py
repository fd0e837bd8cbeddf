"""The ``[billing]`` section: Zoho Billing API access and where each data centre lives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

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
    # The daily budget (docs/contracts.md §4, "Limits"), counted in the store and shared by
    # every replica. Zoho's day: 1,000 calls on Standard, 5,000 on Premium [unsure: public
    # summaries]; a day ends at midnight in ``budget_time_zone``.
    daily_call_limit: int = Field(1000, ge=1, le=10_000_000)
    budget_time_zone: str = Field("UTC", min_length=1)
    # Per minute: the stricter of the two published readings (30 and 100).
    calls_per_minute: int = Field(30, ge=1, le=10_000)
    # Calls in flight at once, per process (5 on Zoho's Free plan, 10 on paid): with several
    # replicas, set it to the plan's figure divided by their number.
    concurrent_calls: int = Field(10, ge=1, le=100)
    # Who stops first (percent of the daily limit used): reconciliation and backfill slow down
    # (a quarter of the minute instead of half) then stop for the day; page reads then show
    # what is stored, labelled "as of"; customer actions spend to the limit.
    background_slow_percent: float = Field(40.0, ge=0, le=100)
    background_stop_percent: float = Field(60.0, ge=0, le=100)
    page_reads_stale_percent: float = Field(80.0, ge=0, le=100)
    # How long a quota answer without Retry-After (HTTP 429, Zoho codes 44, 45, 1070) stops
    # every billing call before one call tries again. Which limit each code means is not
    # documented [unsure]: holding a per-minute refusal to the day's end would stop checkouts
    # for hours, while trying again after a daily one only costs one refused call per hold. So
    # by default a short hold; 0 holds to the end of the budget day.
    quota_hold_seconds: float = Field(300.0, ge=0, le=86_400)

    @field_validator("base_url", "accounts_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("extra_checkout_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [origin_url(value) for value in values]

    @field_validator("budget_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone name; use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value

    @model_validator(mode="after")
    def _budget_order(self) -> BillingSettings:
        if not self.background_stop_percent <= self.page_reads_stale_percent:
            raise ValueError(
                "background_stop_percent must not exceed page_reads_stale_percent: background "
                "work stops before page reads do"
            )
        if not self.background_slow_percent <= self.background_stop_percent:
            raise ValueError("background_slow_percent must not exceed background_stop_percent")
        return self

    @property
    def budget_zone(self) -> ZoneInfo:
        return ZoneInfo(self.budget_time_zone)

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
