"""Sign in with Zoho binds a zgid only with evidence (docs/customer-page.md, "Sign in with Zoho"):
the org Zoho itself reports for the user's token, billing's ``cf_zgid`` on a customer with the
user's verified email, the user's own earlier proven binding, or an operator's approval. A zgid
the browser names and nothing proves reads nothing and binds nothing. All through the real
broker, the real accounts simulator and the real billing simulator."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from broker.clients.zoho_org import default_org_url
from broker.core.identity import UserRecord
from broker.core.zgid_evidence import (
    BindingRequest,
    BindingRequestStatus,
    EvidenceFacts,
    ZgidEvidence,
    may_start_an_org,
    zgid_evidence,
)
from broker.web.appkeys import store_key
from tests.support.basics import EMAIL, ZGID, ZUID
from tests.support.ops import OPS
from tests.support.ops import sign_in as ops_sign_in
from tests.support.pages import OTHER_ZGID, OTHER_ZUID, STANDARD_CODE, Client, visitor
from tests.support.postgres import store_section
from tests.support.zoho import (
    NO_ORG,
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


async def _store(zoho: Zoho) -> dict[str, list[dict[str, Any]]]:
    """What a sign-in could change about who belongs where."""
    return {
        "users": await zoho.world.rows("SELECT * FROM users ORDER BY zuid"),
        "subscriptions": await zoho.world.rows(
            "SELECT subscription_id, zgid, zuid FROM subscriptions ORDER BY subscription_id"
        ),
        "claims": await zoho.world.rows("SELECT * FROM landing_claims ORDER BY subscription_id"),
    }


async def test_a_second_zoho_user_naming_the_victims_zgid_reads_and_binds_nothing(zoho: Zoho):
    victim = await zoho.world.browser()
    page, _ = await zoho.sign_in(victim, visitor(ZUID, ZGID), user=OWNER)
    assert page.status == 303, page.text
    await zoho.world.subscribed(victim, users=5)
    own = await victim.get("/manage")
    assert "Standard" in own.text  # what the victim sees, and the attacker must not
    before = await _store(zoho)

    attacker = await zoho.world.browser()
    page, _ = await zoho.sign_in(attacker, visitor(OTHER_ZUID, ZGID), user=OTHER)
    assert_refused(page, 403, "could not confirm", attacker)
    assert "ask your organisation" in page.text  # says what to do
    for secret in ("Standard", "50.00", "10.00", "2026"):
        assert secret not in page.text
    overview = await attacker.get("/manage")
    assert overview.status == 303  # no session: sent to sign in again, not shown anything
    assert "Standard" not in overview.text
    assert await _store(zoho) == before


async def _user(zoho: Zoho, zuid: str) -> dict[str, Any] | None:
    rows = await zoho.world.rows(
        "SELECT zgid, verified_by, zgid_evidence FROM users WHERE zuid = ?", [zuid]
    )
    return rows[0] if rows else None


async def _requests(zoho: Zoho) -> list[dict[str, Any]]:
    return await zoho.world.rows("SELECT zuid, zgid, email, status FROM binding_requests")


# -- (a) Zoho's Organization API, read with the user's own token ---------------------------------


async def test_the_org_zoho_reports_for_the_users_token_binds_its_zgid(zoho: Zoho):
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(ZUID, ZGID), user=OWNER)
    assert page.status == 303, page.text
    assert browser.session()["zgid"] == ZGID
    assert await _user(zoho, ZUID) == {
        "zgid": ZGID,
        "verified_by": "zoho",
        "zgid_evidence": "org_api",
    }
    assert zoho.accounts.org_requests == 1


async def test_without_the_org_scope_zoho_refuses_the_org_read_and_nothing_binds(
    make_zoho: ZohoFactory,
):
    zoho = await make_zoho(scopes="openid email profile")  # no ZohoCRM.org.READ
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(ZUID, ZGID), user=OWNER)
    assert_refused(page, 403, "could not confirm", browser)
    assert zoho.accounts.org_requests == 1  # asked, and refused with OAUTH_SCOPE_MISMATCH
    assert await _user(zoho, ZUID) is None
    assert await _requests(zoho) == [
        {"zuid": ZUID, "zgid": ZGID, "email": EMAIL, "status": "pending"}
    ]


# -- (b) billing's cf_zgid on a customer with the user's verified email --------------------------


async def test_a_billing_customer_with_the_users_verified_email_vouches_for_its_zgid(zoho: Zoho):
    zoho.world.sim.subscribe(STANDARD_CODE, email=NO_ORG.email, zgid=ZGID)
    await zoho.world.settle()
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(NO_ORG.zuid, ZGID), user=NO_ORG)
    assert page.status == 303, page.text
    assert await _user(zoho, NO_ORG.zuid) == {
        "zgid": ZGID,
        "verified_by": "zoho",
        "zgid_evidence": "billing_customer",
    }


async def test_a_billing_customer_vouches_for_nobody_whose_email_zoho_has_not_verified(
    zoho: Zoho,
):
    zoho.world.sim.subscribe(STANDARD_CODE, email=UNVERIFIED.email, zgid=ZGID)
    await zoho.world.settle()
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(UNVERIFIED.zuid, ZGID), user=UNVERIFIED)
    assert_refused(page, 403, "could not confirm", browser)
    assert await _user(zoho, UNVERIFIED.zuid) is None


# -- (c) the user's own binding, made with evidence ----------------------------------------------


async def test_a_proven_binding_keeps_binding_when_zoho_no_longer_reports_the_org(zoho: Zoho):
    first, _ = await zoho.sign_in(await zoho.world.browser(), visitor(ZUID, ZGID), user=OWNER)
    assert first.status == 303, first.text
    zoho.accounts.users = [replace(OWNER, zgid=None), OTHER]
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(ZUID, ZGID), user=OWNER)
    assert page.status == 303, page.text
    assert browser.session()["zgid"] == ZGID
    assert (await _user(zoho, ZUID) or {})["zgid_evidence"] == "org_api"


async def test_a_binding_made_before_evidence_was_required_proves_nothing(zoho: Zoho):
    first, _ = await zoho.sign_in(await zoho.world.browser(), visitor(ZUID, ZGID), user=OWNER)
    assert first.status == 303, first.text
    await zoho.world.app[store_key].write(
        lambda db: db.execute("UPDATE users SET zgid_evidence = NULL WHERE zuid = ?", [ZUID])
    )
    zoho.accounts.users = [replace(OWNER, zgid=None), OTHER]
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(ZUID, ZGID), user=OWNER)
    assert_refused(page, 403, "could not confirm", browser)


# -- (d) an operator's approval in /ops ----------------------------------------------------------


async def _ops(zoho: Zoho) -> tuple[Client, str]:
    client = await zoho.world._client_factory(zoho.world.broker)
    return client, await ops_sign_in(client)


async def test_an_operator_approves_a_binding_request_and_the_next_sign_in_binds(
    make_zoho: ZohoFactory,
):
    zoho = await make_zoho(sections={"ops": OPS})
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(NO_ORG.zuid, OTHER_ZGID), user=NO_ORG)
    assert_refused(page, 403, "wait for the vendor to approve", browser)

    ops, csrf = await _ops(zoho)
    listing = await ops.get("/ops/bindings")
    text = await listing.text()
    assert listing.status == 200
    assert NO_ORG.zuid in text
    assert OTHER_ZGID in text
    decide = f"/ops/bindings/{NO_ORG.zuid}/decide"
    forged = await ops.post(
        decide, data={"zgid": OTHER_ZGID, "decision": "approve", "csrf": "x" * 43}
    )
    assert forged.status == 403
    assert (await _requests(zoho))[0]["status"] == "pending"
    wrong_org = await ops.post(
        decide, data={"zgid": ZGID, "decision": "approve", "csrf": csrf}, allow_redirects=False
    )
    assert wrong_org.status == 409  # the request is for another org: nothing decided blind
    done = await ops.post(
        decide,
        data={"zgid": OTHER_ZGID, "decision": "approve", "csrf": csrf},
        allow_redirects=False,
    )
    assert done.status == 303, await done.text()
    audit = await zoho.world.audit("ops.approve_binding")
    assert [(a["zuid"], a["result"]) for a in audit] == [("ops:operator", "approved")]

    again = await zoho.world.browser()
    page, _ = await zoho.sign_in(again, visitor(NO_ORG.zuid, OTHER_ZGID), user=NO_ORG)
    assert page.status == 303, page.text
    assert (await _user(zoho, NO_ORG.zuid) or {})["zgid_evidence"] == "operator"
    form = await again.get("/manage/subscribe")  # a new org's first purchase, with (d)
    assert form.status == 200, form.text


async def test_a_refused_binding_request_stays_refused_and_says_so(make_zoho: ZohoFactory):
    zoho = await make_zoho(sections={"ops": OPS})
    first, _ = await zoho.sign_in(
        await zoho.world.browser(), visitor(NO_ORG.zuid, OTHER_ZGID), user=NO_ORG
    )
    assert first.status == 403
    ops, csrf = await _ops(zoho)
    done = await ops.post(
        f"/ops/bindings/{NO_ORG.zuid}/decide",
        data={"zgid": OTHER_ZGID, "decision": "refuse", "csrf": csrf},
        allow_redirects=False,
    )
    assert done.status == 303
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(NO_ORG.zuid, OTHER_ZGID), user=NO_ORG)
    assert_refused(page, 403, "the vendor has declined", browser)
    assert await _user(zoho, NO_ORG.zuid) is None
    assert [a["result"] for a in await zoho.world.audit("ops.refuse_binding")] == ["refused"]


# -- a new org's first purchase ------------------------------------------------------------------


async def test_a_new_orgs_first_purchase_needs_zoho_or_an_operator_to_prove_the_org(zoho: Zoho):
    browser = await zoho.world.browser()
    page, _ = await zoho.sign_in(browser, visitor(ZUID, ZGID), user=OWNER)
    assert page.status == 303, page.text
    assert (await browser.get("/manage/subscribe")).status == 200  # proven by Zoho: may buy
    # The same session, but the binding's evidence is gone (as for a binding made before
    # evidence was required): the first purchase is refused, saying what to do.
    await zoho.world.app[store_key].write(
        lambda db: db.execute("UPDATE users SET zgid_evidence = NULL WHERE zuid = ?", [ZUID])
    )
    refused = await browser.get("/manage/subscribe")
    assert refused.status == 403, refused.text
    assert "ask your organisation" in refused.text
    posted = await browser.submit(
        "/manage/subscribe", {"planid": "1001", "frequency": "monthly", "users": 1, "storage": 0}
    )
    assert posted.status == 403
    assert zoho.world.sim.hosted_pages == {}


# -- the rule itself, without I/O ------------------------------------------------------------------


def _binding(zgid: str, verified_by: str | None, evidence: str | None) -> UserRecord:
    return UserRecord(ZUID, zgid, None, None, None, None, None, 1.0, 1.0, verified_by, evidence)


def _request(zgid: str, status: BindingRequestStatus) -> BindingRequest:
    return BindingRequest(ZUID, zgid, EMAIL, None, 1.0, status)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (EvidenceFacts(ZGID, ZGID, None, None, False), ZgidEvidence.ORG_API),
        (EvidenceFacts(ZGID, OTHER_ZGID, None, None, False), None),  # Zoho names another org
        (
            EvidenceFacts(ZGID, None, None, _request(ZGID, BindingRequestStatus.APPROVED), False),
            ZgidEvidence.OPERATOR,
        ),
        (
            EvidenceFacts(ZGID, None, None, _request(ZGID, BindingRequestStatus.PENDING), False),
            None,
        ),
        (
            EvidenceFacts(
                ZGID, None, None, _request(OTHER_ZGID, BindingRequestStatus.APPROVED), False
            ),
            None,
        ),
        (EvidenceFacts(ZGID, None, None, None, True), ZgidEvidence.BILLING_CUSTOMER),
        (
            EvidenceFacts(ZGID, None, _binding(ZGID, "zoho", "org_api"), None, True),
            ZgidEvidence.ORG_API,  # the binding's stronger evidence is kept
        ),
        (
            EvidenceFacts(ZGID, None, _binding(ZGID, "signed", None), None, False),
            ZgidEvidence.SIGNED_LINK,
        ),
        (EvidenceFacts(ZGID, None, _binding(ZGID, "zoho", None), None, False), None),
        (EvidenceFacts(ZGID, None, _binding(OTHER_ZGID, "zoho", "org_api"), None, False), None),
    ],
)
def test_the_strongest_evidence_for_the_named_zgid_wins(
    facts: EvidenceFacts, expected: ZgidEvidence | None
):
    assert zgid_evidence(facts) == expected


def test_only_zoho_an_operator_or_a_signed_link_may_start_an_org():
    assert {e for e in ZgidEvidence if may_start_an_org(e)} == {
        ZgidEvidence.ORG_API,
        ZgidEvidence.OPERATOR,
        ZgidEvidence.SIGNED_LINK,
    }
    assert not may_start_an_org(None)


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("https://accounts.zoho.com", "https://www.zohoapis.com/crm/v2/org"),
        ("https://accounts.zoho.eu", "https://www.zohoapis.eu/crm/v2/org"),
        ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au/crm/v2/org"),
        ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca/crm/v2/org"),
        ("http://accounts.zoho.com", None),  # never send a token in clear
        ("https://accounts.zoho.com:8443", None),
        ("https://accounts.example.com", None),
    ],
)
def test_the_default_org_api_is_the_signing_in_data_centres(server: str, expected: str | None):
    assert default_org_url(server) == expected
