"""The data-centre table and the checkout origins the page's CSP allows, against Zoho's lists:
Zoho Billing's API introduction names eight data centres (US, EU, IN, AU, JP, CA, CN, SA)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from broker.config import BillingSettings
from broker.config.billing import DATA_CENTRES
from broker.web.middlewares import content_security_policy


def billing(**changes: Any) -> BillingSettings:
    options: dict[str, Any] = {
        "organization_id": "10234695",
        "client_id": "1000.X",
        "client_secret": SecretStr("s"),
        "refresh_token": SecretStr("r"),
    }
    return BillingSettings(**(options | changes))


def test_the_table_holds_exactly_the_data_centres_zoho_billing_lists():
    assert set(DATA_CENTRES) == {"com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa"}


def test_uk_is_refused_because_no_zoho_billing_source_lists_it():
    with pytest.raises(ValidationError, match="data_centre"):
        billing(data_centre="uk")


@pytest.mark.parametrize(
    ("data_centre", "origins"),
    [
        ("com", ["https://*.zoho.com", "https://billing.zohosecure.com"]),
        ("eu", ["https://*.zoho.eu", "https://billing.zohosecure.eu"]),
        ("ca", ["https://*.zohocloud.ca", "https://billing.zohosecure.ca"]),
    ],
)
def test_checkout_may_go_to_the_hosted_pages_and_the_portal_of_the_data_centre(
    data_centre: str, origins: list[str]
):
    assert billing(data_centre=data_centre).checkout_origins == origins


def test_a_mapped_checkout_domain_joins_the_page_csp_form_action():
    settings = billing(data_centre="eu", extra_checkout_origins=["https://Pay.Example.com/"])
    policy = content_security_policy(settings.checkout_origins)
    form_action = next(p for p in policy.split("; ") if p.startswith("form-action"))
    assert form_action == (
        "form-action 'self' https://*.zoho.eu https://billing.zohosecure.eu https://pay.example.com"
    )


@pytest.mark.parametrize(
    "given",
    [
        "pay.example.com",  # no scheme
        "https://pay.example.com/checkout",  # a path is not an origin
        "https://pay.example.com; script-src *",  # would smuggle a directive into the CSP
        "https://pay.example.com https://evil.example",  # would smuggle a second source
        "javascript://x",
    ],
)
def test_an_extra_checkout_origin_that_is_not_a_bare_origin_is_refused_saying_so(given: str):
    with pytest.raises(ValidationError, match="is not an origin"):
        billing(extra_checkout_origins=[given])
