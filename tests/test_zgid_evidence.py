"""Sign in with Zoho binds a zgid only with evidence (README "Sign in with Zoho"): the org Zoho
itself reports for the user's token, billing's ``cf_zgid`` on a customer with the user's verified
email, the user's own earlier proven binding, or an operator's approval. A zgid the browser names
and nothing proves reads nothing and binds nothing. All through the real broker, the real
accounts simulator and the real billing simulator."""

from __future__ import annotations

from typing import Any

from tests.page_support import OTHER_ZUID, visitor
from tests.support import ZGID, ZUID
from tests.zoho_support import OTHER, OWNER, Zoho, assert_refused


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
    assert "ask" in page.text  # says what to do
    for secret in ("Standard", "50.00", "10.00", "2026"):
        assert secret not in page.text
    overview = await attacker.get("/manage")
    assert overview.status == 303  # no session: sent to sign in again, not shown anything
    assert "Standard" not in overview.text
    assert await _store(zoho) == before
