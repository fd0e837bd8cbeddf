"""Sign in with Zoho (``landing.verify = "zoho"``, docs/contracts.md §6.2): the real broker against
the real simulated Zoho Accounts server, every forgery, replay and skip refused.

A browser here is the test client with its cookie jar; Zoho's sign-in page is driven through a
plain client on the accounts simulator (``login_hint`` approves as that user, ``Deny`` refuses).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs
from yarl import URL

from broker.clients.oidc import OidcError, choose_accounts_server, known_accounts_servers
from broker.config import LandingVerification, OidcSettings
from broker.simulators.accounts import Fault
from broker.simulators.demo import DemoSecrets, accounts_simulator, demo_settings
from tests.support.basics import EMAIL, ZGID, ZUID
from tests.support.pages import OTHER_EMAIL, OTHER_ZGID, OTHER_ZUID, visitor
from tests.support.postgres import store_section
from tests.support.zoho import (
    NO_ORG,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    OTHER,
    OWNER,
    UNVERIFIED,
    Zoho,
    ZohoFactory,
    assert_refused,
)


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


# -- the happy path: the token says who, not the browser ---------------------------------------


async def test_sign_in_gives_a_session_for_the_tokens_user_not_the_browsers_claim(zoho: Zoho):
    browser = await zoho.world.browser()
    claims_other = visitor(OTHER_ZUID, ZGID, email=OTHER_EMAIL, display_name="Claimed Name")
    page, _ = await zoho.sign_in(browser, claims_other, user=OWNER)
    assert page.status == 303, page.text
    assert page.location == "/manage"
    session = browser.session()
    assert (session["zuid"], session["zgid"], session["email"]) == (ZUID, ZGID, EMAIL)
    assert session["name"] == "Ada Owner"  # the token's name, not the browser's
    assert await zoho.users() == [{"zuid": ZUID, "zgid": ZGID, "email": EMAIL}]
    overview = await browser.get("/manage")
    assert overview.status == 200, overview.text
    assert "Your subscription" in overview.text


async def test_plain_landing_parameters_alone_never_start_a_session(zoho: Zoho):
    browser = await zoho.world.browser()
    page = await browser.get("/manage", params=visitor())
    assert page.status == 303
    assert URL(page.location).origin() == URL(zoho.accounts.origin)
    assert browser.session_cookie() is None
    assert await zoho.users() == []


async def test_a_visit_without_a_session_is_sent_to_sign_in(zoho: Zoho):
    browser = await zoho.world.browser()
    page = await browser.get("/manage")
    assert page.status == 303
    assert URL(page.location).path == "/oauth/v2/auth"


async def test_sign_in_request_carries_state_nonce_and_s256_pkce(zoho: Zoho):
    auth_url = await zoho.start(await zoho.world.browser())
    query = auth_url.query
    assert query["client_id"] == OIDC_CLIENT_ID
    assert query["response_type"] == "code"
    assert query["scope"] == "openid email profile ZohoCRM.org.READ"
    assert query["redirect_uri"] == str(zoho.world.broker.make_url("/manage/oidc/callback"))
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256 digest


async def test_unverified_email_signs_in_without_an_email(zoho: Zoho):
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(UNVERIFIED.zuid, OTHER_ZGID), user=UNVERIFIED)
    assert page.status == 303, page.text
    session = browser.session()
    assert (session["zuid"], session["email"]) == (UNVERIFIED.zuid, None)


# -- forgeries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault.FOREIGN_KEY, "bad_signature"),
        (Fault.WRONG_AUD, "'aud'"),
        (Fault.WRONG_ISS, "'iss'"),
        (Fault.EXPIRED, "expired"),
        (Fault.WRONG_NONCE, "'nonce'"),
        (Fault.ALG_NONE, "'none' is not allowed"),
        (Fault.HS256, "'HS256' is not allowed"),
        (Fault.NO_ID_TOKEN, "no id_token"),
    ],
)
async def test_a_forged_or_wrong_id_token_is_refused_with_no_session(
    zoho: Zoho, fault: Fault, reason: str
):
    zoho.accounts.fault = fault
    browser = await zoho.world.browser()
    with capture_logs() as logs:
        page, _ = await zoho.sign_in(browser)
    words = "Zoho did not accept" if fault is Fault.NO_ID_TOKEN else "you were not signed in"
    assert_refused(page, 403, words, browser)
    refusals = [e for e in logs if e["event"] in ("oidc.id_token_refused", "oidc.code_refused")]
    assert len(refusals) == 1
    assert reason in str(refusals[0].get("reason", refusals[0].get("error")))
    assert await zoho.users() == []


async def test_replayed_callback_is_refused(zoho: Zoho):
    browser = await zoho.world.browser()
    first, callback = await zoho.sign_in(browser)
    assert first.status == 303
    again = await (await zoho.world.browser()).get(callback.path_qs)
    assert again.status == 403
    assert "expired or was already used" in again.text
    same_browser = await browser.get(callback.path_qs)
    assert same_browser.status == 403
    assert "expired or was already used" in same_browser.text


async def test_replayed_code_under_a_fresh_state_is_refused(zoho: Zoho):
    browser = await zoho.world.browser()
    first, used = await zoho.sign_in(browser)
    assert first.status == 303
    attacker = await zoho.world.browser()
    fresh = await zoho.approve(await zoho.start(attacker), OTHER)
    replay = fresh.update_query(code=used.query["code"])
    page = await attacker.get(replay.path_qs)
    assert_refused(page, 403, "Zoho did not accept this sign-in", attacker)


async def test_callback_without_a_started_flow_is_refused(zoho: Zoho):
    browser = await zoho.world.browser()
    page = await browser.get(
        "/manage/oidc/callback", params={"state": "x" * 43, "code": "1000.abc"}
    )
    assert_refused(page, 403, "expired or was already used", browser)
    assert zoho.accounts.token_requests == 0


async def test_callback_in_another_browser_is_refused(zoho: Zoho):
    """Login CSRF: a code and state issued to the attacker's browser, opened in the victim's."""
    attacker = await zoho.world.browser()
    callback = await zoho.approve(
        await zoho.start(attacker, visitor(OTHER_ZUID, OTHER_ZGID)), OTHER
    )
    victim = await zoho.world.browser()
    page = await victim.get(callback.path_qs)
    assert_refused(page, 403, "started in another browser", victim)
    assert zoho.accounts.token_requests == 0
    assert await zoho.users() == []


async def test_expired_flow_is_refused(make_zoho: ZohoFactory):
    zoho = await make_zoho(flow_max_age_seconds=0.000001)
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser)
    assert_refused(page, 403, "expired or was already used", browser)


async def test_without_pkce_the_request_carries_no_challenge_and_still_signs_in(
    make_zoho: ZohoFactory,
):
    zoho = await make_zoho(use_pkce=False)
    browser = await zoho.world.browser()
    auth_url = await zoho.start(browser)
    assert "code_challenge" not in auth_url.query
    page = await browser.get((await zoho.approve(auth_url)).path_qs)
    assert page.status == 303, page.text
    assert browser.session()["zuid"] == ZUID


async def test_declined_sign_in_says_so(zoho: Zoho):
    browser = await zoho.world.browser()
    auth_url = await zoho.start(browser)
    response = await zoho.accounts_client.post(
        "/oauth/v2/auth/approve", data={**auth_url.query, "deny": "1"}, allow_redirects=False
    )
    callback = URL(response.headers["Location"])
    assert callback.query["error"] == "access_denied"
    page = await browser.get(callback.path_qs)
    assert_refused(page, 403, "you declined to share your Zoho identity", browser)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("code=a", "carries no state"),
        ("state=a&state=b&code=c", "gives state twice"),
        ("state=a&code=b&code=c", "gives code twice"),
    ],
)
async def test_malformed_callback_is_a_clear_400(zoho: Zoho, query: str, words: str):
    browser = await zoho.world.browser()
    page = await browser.get(f"/manage/oidc/callback?{query}")
    assert_refused(page, 400, words, browser)


async def test_callback_naming_an_unknown_accounts_server_never_contacts_it(
    zoho: Zoho, aiohttp_server: Callable[..., Awaitable[TestServer]]
):
    """SSRF and token theft: ``accounts-server`` in the callback is the attacker's."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({})

    evil = web.Application()
    evil.router.add_route("*", "/{tail:.*}", record)
    evil_server = await aiohttp_server(evil)
    browser = await zoho.world.browser()
    callback = await zoho.approve(await zoho.start(browser))
    forged = callback.update_query({"accounts-server": str(evil_server.make_url("")).rstrip("/")})
    page = await browser.get(forged.path_qs)
    assert_refused(page, 403, "naming an accounts server this service does not use", browser)
    assert seen == []
    assert zoho.accounts.token_requests == 0


def test_accounts_servers_are_the_configured_one_and_listed_data_centres_only():
    settings = OidcSettings(client_id="c", client_secret="s", data_centres=["eu", "ca"])
    known = known_accounts_servers(settings, "com")
    assert known == [
        "https://accounts.zoho.com",
        "https://accounts.zoho.eu",
        "https://accounts.zohocloud.ca",
    ]
    assert choose_accounts_server(None, known) == "https://accounts.zoho.com"
    assert choose_accounts_server("https://accounts.zoho.eu", known) == "https://accounts.zoho.eu"
    for forged in (
        "https://accounts.zoho.in",  # a real data centre, but not configured
        "https://accounts.zoho.eu.evil.example",
        "https://accounts.zoho.eu@evil.example",
        "http://accounts.zoho.eu",
        "https://accounts.zoho.eu/../x",
    ):
        with pytest.raises(OidcError):
            choose_accounts_server(forged, known)


# -- the org binding -----------------------------------------------------------------------------


async def test_zgid_is_bound_on_the_first_verified_visit_and_another_is_refused(zoho: Zoho):
    first, _ = await zoho.sign_in(await zoho.world.browser(), visitor(ZUID, ZGID))
    assert first.status == 303
    browser = await zoho.world.browser()
    second, _ = await zoho.sign_in(browser, visitor(ZUID, OTHER_ZGID))
    assert_refused(second, 403, "belongs to another organisation", browser)
    assert await zoho.users() == [{"zuid": ZUID, "zgid": ZGID, "email": EMAIL}]


async def test_a_later_visit_without_a_zgid_uses_the_bound_one(zoho: Zoho):
    first, _ = await zoho.sign_in(await zoho.world.browser(), visitor(ZUID, ZGID))
    assert first.status == 303
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, {"display_name": "Ada"})
    assert page.status == 303, page.text
    assert browser.session()["zgid"] == ZGID


async def test_a_first_visit_without_a_zgid_takes_the_org_zoho_reports(zoho: Zoho):
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, {"display_name": "Ada"})
    assert page.status == 303, page.text
    assert browser.session()["zgid"] == ZGID  # OWNER's org in the accounts simulator


async def test_a_first_visit_without_a_zgid_or_a_zoho_org_is_refused_clearly(zoho: Zoho):
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, {"display_name": "Nadia"}, user=NO_ORG)
    assert_refused(page, 400, "we do not know your organisation yet", browser)


# -- secrets ---------------------------------------------------------------------------------------


async def test_no_log_line_carries_the_client_secret_a_code_or_a_token(zoho: Zoho):
    browser = await zoho.world.browser()
    with capture_logs() as logs:
        page, callback = await zoho.sign_in(browser)
        replay = await browser.get(callback.path_qs)
    assert page.status == 303
    assert replay.status == 403
    text = repr(logs)
    assert "oidc" in text  # the sign-in was logged ...
    for secret in (OIDC_CLIENT_SECRET, callback.query["code"], callback.query["state"]):
        assert secret not in text  # ... without anything that would let someone replay it


# -- the demo ------------------------------------------------------------------------------------


def test_demo_verify_zoho_signs_in_against_its_accounts_simulator(tmp_path: Path):
    demo_secrets = DemoSecrets()
    settings = demo_settings("127.0.0.1", 22010, 22011, 22012, tmp_path, demo_secrets, 22013)
    assert settings.landing.verification is LandingVerification.ZOHO
    assert settings.landing.oidc is not None
    assert settings.landing.oidc.accounts_url == "http://127.0.0.1:22013"
    accounts = accounts_simulator("127.0.0.1", 22010, 22013, demo_secrets.oidc_client_secret)
    assert accounts.redirect_uris == {"http://127.0.0.1:22010/manage/oidc/callback"}
    assert accounts.client_id == settings.landing.oidc.client_id
    plain = demo_settings("127.0.0.1", 22010, 22011, 22012, tmp_path, demo_secrets)
    assert plain.landing.oidc is None
