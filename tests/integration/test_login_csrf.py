"""Login CSRF: another site must not post the landing form and sign a visitor in to an org of its
choosing. Real broker app; the headers are what a browser sends with a cross-site form post."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.web.appkeys import clock_key
from tests.conftest import db_rows
from tests.support.basics import APP_DOMAIN, EMAIL, ZGID, ZUID, link_signature


async def post_landing(client: Any, headers: dict[str, str]) -> Any:
    fields = [("zuid", ZUID), ("zgid", ZGID), ("email", EMAIL)]
    fields += link_signature(fields, now=client.app[clock_key]())
    response = await client.post(
        "/manage", data=dict(fields), headers=headers, allow_redirects=False
    )
    await response.read()
    return response


def own_origin(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


REFUSED_HEADERS = {
    "foreign_origin": {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    "foreign_origin_without_fetch_metadata": {"Origin": "https://evil.example"},
    "null_origin": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    "cross_site_without_origin": {"Sec-Fetch-Site": "cross-site"},
    "same_site_without_origin": {"Sec-Fetch-Site": "same-site"},
    "lookalike_platform_origin": {"Origin": f"https://{APP_DOMAIN}.zohoplatform.com.evil.example"},
    "other_vendors_app_by_default": {"Origin": "https://otherapp.zohoplatform.com"},
    "http_app_origin": {"Origin": f"http://{APP_DOMAIN}.zohoplatform.com"},
}


@pytest.mark.parametrize("case", list(REFUSED_HEADERS))
async def test_landing_post_from_another_site_is_refused(make_broker, case: str):
    broker = await make_broker()
    with capture_logs() as logs:
        response = await post_landing(broker, REFUSED_HEADERS[case])
    assert response.status == 403
    assert [e["log_level"] for e in logs if e["event"] == "landing.origin_refused"] == ["warning"]
    text = await response.text()
    assert "may not open this page" in text
    assert "Subscription menu" in text
    assert "set-cookie" not in {k.lower() for k in response.headers}
    assert await db_rows(broker, "SELECT * FROM users") == []


async def test_landing_post_from_the_vertical_solution_origin_is_allowed(make_broker):
    broker = await make_broker()
    origin = f"https://{APP_DOMAIN}.zohoplatform.com"
    response = await post_landing(broker, {"Origin": origin, "Sec-Fetch-Site": "cross-site"})
    assert (response.status, response.headers["Location"]) == (303, "/manage")


async def test_landing_post_from_the_brokers_own_origin_is_allowed(make_broker):
    broker = await make_broker()
    headers = {"Origin": own_origin(broker), "Sec-Fetch-Site": "same-origin"}
    assert (await post_landing(broker, headers)).status == 303


async def test_landing_post_without_browser_headers_is_allowed(make_broker):
    """Not a browser, so not a login CSRF; the signed link still has to verify."""
    broker = await make_broker()
    assert (await post_landing(broker, {})).status == 303


async def test_wildcard_allowed_origin_admits_one_subdomain_level(make_broker):
    broker = await make_broker(landing={"allowed_origins": ["https://*.zohoplatform.com"]})
    allowed = {"Origin": "https://otherapp.zohoplatform.com", "Sec-Fetch-Site": "cross-site"}
    assert (await post_landing(broker, allowed)).status == 303
    deeper = {"Origin": "https://a.b.zohoplatform.com", "Sec-Fetch-Site": "cross-site"}
    assert (await post_landing(broker, deeper)).status == 403
    bare = {"Origin": "https://zohoplatform.com", "Sec-Fetch-Site": "cross-site"}
    assert (await post_landing(broker, bare)).status == 403


async def test_exact_allowed_origin_is_admitted(make_broker):
    broker = await make_broker(landing={"allowed_origins": ["https://crm.vendor.example"]})
    headers = {"Origin": "https://crm.vendor.example", "Sec-Fetch-Site": "cross-site"}
    assert (await post_landing(broker, headers)).status == 303


async def test_signed_get_link_stays_allowed_as_a_top_level_navigation(make_broker):
    broker = await make_broker()
    pairs = [("zuid", ZUID), ("zgid", ZGID)]
    pairs += link_signature(pairs, now=broker.app[clock_key]())
    response = await broker.get(
        "/manage",
        params=pairs,
        headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
        allow_redirects=False,
    )
    assert response.status == 303


@pytest.mark.parametrize(
    "value", ["crm.vendor.example", "https://crm.vendor.example/path", "ftp://x"]
)
async def test_allowed_origins_must_be_origins(make_broker, value: str):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is not an origin"):
        await make_broker(landing={"allowed_origins": [value]})


@pytest.mark.parametrize("proto", ["https", "HTTPS", "Https"])
async def test_behind_the_tls_proxy_the_brokers_own_https_origin_is_allowed_in_any_case(
    make_broker, proto: str
):
    # A scheme is case-insensitive (RFC 9110 §4.2.3): the proxy's "HTTPS" means https, as it
    # does for the Secure cookie; the page posting to itself must not be refused as foreign.
    broker = await make_broker(server={"behind_tls_proxy": True})
    own = own_origin(broker).replace("http://", "https://", 1)
    headers = {"Origin": own, "Sec-Fetch-Site": "same-origin", "X-Forwarded-Proto": proto}
    assert (await post_landing(broker, headers)).status == 303


async def test_without_the_tls_proxy_setting_a_forwarded_proto_is_not_believed(make_broker):
    broker = await make_broker()
    own = own_origin(broker).replace("http://", "https://", 1)
    headers = {"Origin": own, "Sec-Fetch-Site": "same-origin", "X-Forwarded-Proto": "https"}
    assert (await post_landing(broker, headers)).status == 403
