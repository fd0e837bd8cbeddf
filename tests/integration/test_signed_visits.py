"""Identity: a session starts only from a verified visit, a signed link opens
the page once, forged and replayed links are refused, and only verified visits claim parked
subscriptions or supply a zgid. Real broker, real billing and Developer Console simulators.
"""

from __future__ import annotations

from secrets import token_hex
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.core.link_signing import sign_link
from tests.support.basics import EMAIL, LINK_SECRET
from tests.support.pages import (
    OTHER_EMAIL,
    OTHER_ZGID,
    OTHER_ZUID,
    OWNER_ZGID,
    OWNER_ZUID,
    STANDARD,
    STANDARD_CODE,
    Browser,
    PageWorld,
    WorldFactory,
    visitor,
)
from tests.support.postgres import store_section


@pytest.fixture
def broker_store(store_url: str) -> dict[str, Any]:
    """Every broker in this module runs on SQLite and on PostgreSQL."""
    return store_section(store_url)


ALREADY_USED = "the link was already used; each link opens the page once"
REFUSED = "this link is not valid any more, or it was changed"


def signed_pairs(world: PageWorld, params: dict[str, str]) -> list[tuple[str, str]]:
    """A link as the vendor's Vertical Solution signs it (docs/contracts.md §6.1)."""
    values = {**params, "ts": str(int(world.clock())), "nonce": token_hex(8)}
    return [*values.items(), ("sig", sign_link(values.items(), LINK_SECRET))]


async def users(world: PageWorld) -> list[dict[str, Any]]:
    return await world.rows("SELECT zuid, zgid, email, verified_by FROM users ORDER BY zuid")


# --- single use -----------------------------------------------------------------------------------


async def test_a_signed_link_opens_the_page_once(world: PageWorld):
    link = signed_pairs(world, visitor())
    first = await world.browser()
    assert (await first.get("/manage", params=link)).status == 303
    assert first.session()["zgid"] == OWNER_ZGID
    replay = await world.browser()
    page = await replay.get("/manage", params=link)
    assert page.status == 403
    assert REFUSED in page.text
    assert ALREADY_USED in page.text
    assert replay.session_cookie() is None


async def test_replayed_nonce_is_refused_by_another_broker_on_the_same_database(make_broker):
    """A restart or a second replica must refuse the replay too: nonces live in the database."""
    one = await make_broker()
    two = await make_broker()
    from broker.web.appkeys import clock_key

    values = {**visitor(), "ts": str(int(one.app[clock_key]())), "nonce": token_hex(8)}
    link = [*values.items(), ("sig", sign_link(values.items(), LINK_SECRET))]
    first = await one.get("/manage", params=link, allow_redirects=False)
    assert first.status == 303
    second = await two.get("/manage", params=link, allow_redirects=False)
    assert second.status == 403
    assert ALREADY_USED in await second.text()


async def test_refused_link_is_logged_with_its_reason_but_never_its_signature(world: PageWorld):
    link = signed_pairs(world, visitor())
    browser = await world.browser()
    assert (await browser.get("/manage", params=link)).status == 303
    with capture_logs() as logs:
        assert (await browser.get("/manage", params=link)).status == 403
    [refusal] = [entry for entry in logs if entry["event"] == "landing.link_refused"]
    assert refusal["reason"] == "replayed_nonce"
    sig = dict(link)["sig"]
    assert all(sig not in repr(entry) and LINK_SECRET not in repr(entry) for entry in logs)


async def test_repeated_parameter_in_a_signed_link_is_refused(world: PageWorld):
    link = signed_pairs(world, visitor())
    browser = await world.browser()
    page = await browser.get("/manage", params=[*link, ("zgid", OTHER_ZGID)])
    assert page.status == 403
    assert "a parameter appears more than once in the link" in page.text
    assert await users(world) == []


# --- the re-split forgery -----------------------------------------------------------------------


async def test_resplit_signed_display_name_gets_no_session_and_changes_nothing(
    world: PageWorld, owner: Browser, live: str
):
    """Mallory's app signs her own ids with a display name built to be re-split into the victim's
    zuid/zgid; the old format accepted the re-split link and let her cancel the victim's plan."""
    ts, nonce = str(int(world.clock())), token_hex(8)
    attack = f"Mallory&nonce={nonce}&ts={ts}&zgid={OWNER_ZGID}&zuid={OWNER_ZUID}&zzz="
    honest = {"display_name": attack, "nonce": nonce, "ts": ts}
    honest |= {"zgid": OTHER_ZGID, "zuid": OTHER_ZUID}
    sig = sign_link(honest.items(), LINK_SECRET)
    tail = f"&nonce={nonce}&ts={ts}&zgid={OTHER_ZGID}&zuid={OTHER_ZUID}"
    resplit = [
        ("display_name", "Mallory"),
        ("nonce", nonce),
        ("ts", ts),
        ("zgid", OWNER_ZGID),
        ("zuid", OWNER_ZUID),
        ("zzz", tail),
        ("sig", sig),
    ]
    await world.settle()
    audit_before = await world.audit()
    mallory = await world.browser()
    page = await mallory.get("/manage", params=resplit)
    assert page.status == 403
    assert mallory.session_cookie() is None
    cancel = await mallory.post("/manage/cancel", data={"when": "now", "confirm": "yes"})
    assert cancel.status in (401, 403)
    await world.settle()
    assert world.sim.subscriptions[live].status == "live"
    assert [c.method for c in world.calls()] == ["POST"]
    assert await world.audit() == audit_before


# --- claims of parked subscriptions, in every mode ----------------------------------------------


async def parked(world: PageWorld) -> str:
    """A subscription billing could not tie to an org (no cf_zuid, no cf_zgid)."""
    sub = world.sim.subscribe(STANDARD_CODE, quantity=3, email=EMAIL, display_name="Owner Org")
    await world.settle()
    [row] = await world.rows("SELECT state, reason FROM subscriptions")
    assert row["state"] == "parked", "the subscription should be parked"
    assert row["reason"], "a parked subscription says why"
    return sub.subscription_id


async def assert_still_parked(world: PageWorld, subscription_id: str) -> None:
    await world.settle()
    [row] = await world.rows(
        "SELECT zgid, zuid, state, reason FROM subscriptions WHERE subscription_id = ?",
        [subscription_id],
    )
    assert (row["zgid"], row["zuid"], row["state"]) == (None, None, "parked")
    assert row["reason"]
    assert world.calls() == []


def strangers_claim(subscription_id: str) -> dict[str, str]:
    """The old attack: a stranger's ids, the parked subscription, and the customer's email."""
    return visitor(OTHER_ZUID, OTHER_ZGID, email=EMAIL, subscription_id=subscription_id)


async def test_signed_mode_refuses_a_strangers_edited_claim(world: PageWorld):
    subscription_id = await parked(world)
    stranger = await world.browser()
    # Sent as plain parameters: unsigned, refused.
    plain = await stranger.enter(strangers_claim(subscription_id), sign=False)
    assert plain.status == 403
    # The stranger's own signed link, with the email and subscription edited in afterwards.
    own = dict(signed_pairs(world, visitor(OTHER_ZUID, OTHER_ZGID, email=OTHER_EMAIL)))
    edited = {**own, "email": EMAIL, "subscription_id": subscription_id}
    assert (await stranger.get("/manage", params=edited)).status == 403
    assert stranger.session_cookie() is None
    assert await world.rows("SELECT * FROM landing_claims") == []
    await assert_still_parked(world, subscription_id)


async def test_signed_claim_with_the_verified_email_is_released(world: PageWorld):
    subscription_id = await parked(world)
    owner = await world.browser()
    page = await owner.enter(visitor(email=EMAIL.upper(), subscription_id=subscription_id))
    assert page.status == 303
    await world.settle()
    [add] = world.calls("POST")
    assert (add.zgid, add.body["zuid"], add.body["subscription_id"]) == (
        OWNER_ZGID,
        OWNER_ZUID,
        subscription_id,
    )


async def test_none_mode_opens_the_page_but_never_claims(make_world: WorldFactory):
    world = await make_world(landing={"verify": "none", "link_secret": None})
    subscription_id = await parked(world)
    stranger = await world.browser()
    with capture_logs() as logs:
        page = await stranger.enter(strangers_claim(subscription_id), sign=False)
    assert page.status == 303  # believing the browser was the operator's explicit choice
    assert any(entry["event"] == "landing.unverified_visit" for entry in logs)
    overview = await stranger.get("/manage")
    assert overview.status == 200
    assert subscription_id not in overview.text
    assert await world.rows("SELECT * FROM landing_claims") == []
    assert await users(world) == [
        {"zuid": OTHER_ZUID, "zgid": OTHER_ZGID, "email": EMAIL, "verified_by": None}
    ]
    await assert_still_parked(world, subscription_id)


async def test_unconfigured_mode_refuses_the_claim(make_world: WorldFactory):
    world = await make_world(landing={"link_secret": None})
    subscription_id = await parked(world)
    stranger = await world.browser()
    page = await stranger.enter(strangers_claim(subscription_id), sign=False)
    assert page.status == 503
    assert stranger.session_cookie() is None
    await assert_still_parked(world, subscription_id)


# --- no verification configured, and "none" -------------------------------------------------------


async def test_unconfigured_page_tells_the_operator_what_to_set_while_webhooks_work(
    make_world: WorldFactory,
):
    world = await make_world(landing={"link_secret": None})
    browser = await world.browser()
    page = await browser.enter()
    assert page.status == 503
    assert "BROKER_LANDING__LINK_SECRET" in page.text
    assert "BROKER_LANDING__VERIFY" in page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert browser.session_cookie() is None
    assert await users(world) == []
    world.sim.subscribe(STANDARD_CODE, quantity=2, zuid=OWNER_ZUID, zgid=OWNER_ZGID)
    await world.settle()
    [add] = world.calls("POST")
    assert (add.zgid, add.body["no_of_users"]) == (OWNER_ZGID, "2")


async def test_none_mode_warns_on_every_visit(make_world: WorldFactory):
    world = await make_world(landing={"verify": "none"})
    with capture_logs() as logs:
        for _ in range(2):
            assert (await (await world.browser()).enter(sign=False)).status == 303
    warnings = [e for e in logs if e["event"] == "landing.unverified_visit"]
    assert [w["log_level"] for w in warnings] == ["warning", "warning"]


# --- a billing customer with cf_zuid only -------------------------------------------------------


async def test_webhook_first_then_verified_visit_adds_once_at_the_users_zgid(
    world: PageWorld,
):
    sub = world.sim.subscribe(STANDARD_CODE, quantity=4, email=EMAIL, zuid=OWNER_ZUID)
    await world.settle()
    assert world.calls() == []
    owner = await world.browser()
    assert (await owner.enter()).status == 303
    await world.settle()
    [add] = world.calls()
    assert (add.method, add.zgid, add.body["zuid"], add.body["subscription_id"]) == (
        "POST",
        OWNER_ZGID,
        OWNER_ZUID,
        sub.subscription_id,
    )
    overview = await owner.get("/manage")
    assert 'href="/manage/cancel"' in overview.text  # the owner's page shows it, manageable


async def test_verified_visit_first_then_webhook_adds_once_at_the_users_zgid(
    world: PageWorld,
):
    assert (await (await world.browser()).enter()).status == 303
    sub = world.sim.subscribe(STANDARD_CODE, quantity=4, email=EMAIL, zuid=OWNER_ZUID)
    await world.settle()
    [add] = world.calls()
    assert (add.method, add.zgid, add.body["subscription_id"]) == (
        "POST",
        OWNER_ZGID,
        sub.subscription_id,
    )


async def test_unverified_visit_never_supplies_a_zgid(make_world: WorldFactory):
    world = await make_world(landing={"verify": "none"})
    assert (await (await world.browser()).enter(sign=False)).status == 303
    world.sim.subscribe(STANDARD_CODE, quantity=4, email=EMAIL, zuid=OWNER_ZUID)
    await world.settle()
    assert world.calls() == []
    [row] = await world.rows("SELECT state, reason FROM subscriptions")
    assert row["state"] == "parked"
    assert row["reason"]


@pytest.fixture
async def zuid_only_world(make_world: WorldFactory) -> PageWorld:
    """Billing set up as the vendor's documentation says: one customer custom field, zuid."""
    return await make_world(billing_simulator={"customer_fields": ("zuid",)})


async def test_checkout_in_an_org_with_only_a_zuid_field_reaches_the_platform(
    zuid_only_world: PageWorld,
):
    world = zuid_only_world
    owner = await world.signed_in()
    subscription_id = await world.subscribed(owner, planid=STANDARD, users=3)
    customer = world.sim.subscriptions[subscription_id].customer
    assert [f.api_name for f in customer.custom_fields] == ["cf_zuid"]  # cf_zgid was dropped
    await world.settle()
    [add] = world.calls()
    assert (add.zgid, add.body["zuid"], add.body["no_of_users"]) == (OWNER_ZGID, OWNER_ZUID, "3")
