"""What the Manage Subscription page refuses: forms from elsewhere (CSRF), ids edited in the
address, members acting for the billing owner, one org reaching another's subscription, altered or
stale signed links, forged session cookies, and names that try to become markup. Also the headers
every page carries.

Everything runs against the real broker, the billing simulator and the platform simulator; each
refusal is checked for what it says and for leaving billing, the platform and the audit log alone.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from secrets import token_hex
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer

from broker.core.link_signing import sign_link
from broker.manage.sessions import Session, SessionCodec
from tests.support.basics import LINK_SECRET
from tests.support.pages import (
    MEMBER_ZUID,
    OTHER_EMAIL,
    OTHER_ZGID,
    OTHER_ZUID,
    OWNER_ZGID,
    OWNER_ZUID,
    PROFESSIONAL,
    STANDARD,
    Browser,
    Page,
    PageWorld,
    WorldFactory,
    session_payload,
    visitor,
)


@pytest.fixture
def page_plans() -> dict[str, Any]:
    """These pages are a vendor's who offers a pause that keeps the app working
    (tests/integration/test_pause_policy.py covers each policy and the default, which offers
    none)."""
    return {"pause_policy": "keep"}


FORBIDDEN_FORM = "this form has expired or did not come from this page"
OWNER_ONLY = "only your organisation&#39;s billing owner can change this subscription"
ACTION_LINKS = (
    'href="/manage/change"',
    'href="/manage/pause"',
    'href="/manage/cancel"',
    'href="/manage/subscribe"',
    'action="/manage/reactivate"',
    'action="/manage/resume"',
)


def set_cookies(page: Page) -> SimpleCookie:
    cookies = SimpleCookie()
    for header in page.headers.getall("Set-Cookie", []):
        cookies.load(header)
    return cookies


def snapshot(world: PageWorld) -> list[tuple[str, str, int, int]]:
    """Billing's side, as far as any of these actions could change it."""
    return [
        (s.subscription_id, s.status, s.quantity, len(world.sim.hosted_pages))
        for s in world.sim.subscriptions.values()
    ]


async def assert_nothing_changed(
    world: PageWorld, before: list[tuple[str, str, int, int]], audit_rows: int
) -> None:
    await world.settle()
    assert snapshot(world) == before
    rows = await world.audit()
    # A refusal is audited, but nothing else may be added.
    assert len([r for r in rows if not str(r["result"]).startswith("refused")]) == audit_rows
    assert [c.method for c in world.calls()] == ["POST"]


# --- CSRF -----------------------------------------------------------------------------------------

POSTED_ACTIONS = {
    "subscribe": {"planid": STANDARD, "frequency": "monthly", "users": "9"},
    "change": {"planid": STANDARD, "frequency": "monthly", "users": "2"},
    "cancel": {"when": "now", "confirm": "yes"},
    "pause": {"resume_on": "2026-06-20"},
    "reactivate": {},
    "resume": {},
}


@pytest.mark.parametrize("token", ["missing", "another_session", "another_org", "empty"])
@pytest.mark.parametrize("action", list(POSTED_ACTIONS))
async def test_form_post_without_this_sessions_csrf_token_is_403_and_changes_nothing(
    world: PageWorld, owner: Browser, live: str, action: str, token: str
):
    other = await world.signed_in(
        visitor(OTHER_ZUID, OTHER_ZGID, email=OTHER_EMAIL) if token == "another_org" else None
    )
    tokens = {
        "missing": {},
        "empty": {"csrf_token": ""},
        "another_session": {"csrf_token": other.session()["csrf"]},
        "another_org": {"csrf_token": other.session()["csrf"]},
    }
    await world.settle()
    before, audit_rows = snapshot(world), len(await world.audit())
    page = await owner.post(f"/manage/{action}", data={**POSTED_ACTIONS[action], **tokens[token]})
    assert page.status == 403
    assert FORBIDDEN_FORM in page.text
    assert "reload it and try again" in page.text
    await assert_nothing_changed(world, before, audit_rows)
    refusal = (await world.audit())[-1]
    assert (refusal["zuid"], refusal["zgid"], refusal["action"], refusal["result"]) == (
        OWNER_ZUID,
        OWNER_ZGID,
        action,
        "refused: csrf",
    )


# --- ids edited in the address --------------------------------------------------------------------


async def test_user_of_org_a_entering_with_org_b_zgid_is_refused(
    world: PageWorld, owner: Browser, live: str
):
    forged = await owner.enter(visitor(OWNER_ZUID, OTHER_ZGID))
    assert forged.status == 403
    assert "this user belongs to another organisation" in forged.text
    assert "broker_session" not in set_cookies(forged)
    assert owner.session()["zgid"] == OWNER_ZGID  # the old session is untouched
    stranger = await world.browser()
    refused = await stranger.enter(visitor(OWNER_ZUID, OTHER_ZGID))
    assert refused.status == 403
    assert stranger.session_cookie() is None
    users = await world.rows("SELECT zuid, zgid FROM users ORDER BY zuid")
    assert users == [{"zuid": OWNER_ZUID, "zgid": OWNER_ZGID}]


async def test_session_cookie_edited_to_another_org_is_not_a_session(
    world: PageWorld, owner: Browser, live: str
):
    cookie = owner.session_cookie()
    assert cookie is not None
    payload, signed_at, signature = cookie.rsplit(".", 2)
    document = session_payload(cookie)
    document["zgid"] = OTHER_ZGID
    edited = URLSafeSerializer(b"unused").dump_payload(document).decode()
    assert edited != payload
    forger, copier = await world.browser(), await world.browser()
    forged = await forger.get(
        "/manage", headers={"Cookie": f"broker_session={edited}.{signed_at}.{signature}"}
    )
    assert forged.status == 401
    assert live not in forged.text
    copied = await copier.get("/manage", headers={"Cookie": f"broker_session={cookie}"})
    assert copied.status == 200  # the same request with the genuine cookie is let in


OLD_SESSION_SECRET = "old-session-secret-0123456789"
NEW_SESSION_SECRET = "new-session-secret-9876543210"
EIGHT_HOURS = 8 * 3600.0  # landing.session_max_age_seconds' default


def resigned(cookie: str, key: str, clock: Callable[[], float]) -> str:
    """The same session, signed with ``key`` as a broker holding that key would have."""
    codec = SessionCodec([key.encode()], max_age_seconds=EIGHT_HOURS, clock=clock)
    return codec.dumps(Session(**session_payload(cookie)))


async def test_session_signed_with_the_old_secret_still_opens_after_rotation(
    make_world: WorldFactory,
):
    landing = {"session_secret": NEW_SESSION_SECRET, "old_session_secrets": [OLD_SESSION_SECRET]}
    world = await make_world(landing=landing)
    owner = await world.signed_in(visitor())
    cookie = owner.session_cookie()
    assert cookie is not None
    from_before = resigned(cookie, OLD_SESSION_SECRET, world.clock)
    from_elsewhere = resigned(cookie, "never-configured-secret-000", world.clock)
    old, foreign = await world.browser(), await world.browser()
    kept = await old.get("/manage", headers={"Cookie": f"broker_session={from_before}"})
    refused = await foreign.get("/manage", headers={"Cookie": f"broker_session={from_elsewhere}"})
    assert kept.status == 200
    assert "Ada Owner" in kept.text
    assert refused.status == 401


def test_the_newest_session_secret_signs_and_every_listed_one_verifies():
    def now() -> float:
        return 1_764_000_000.0

    old, new = OLD_SESSION_SECRET.encode(), NEW_SESSION_SECRET.encode()
    rotating = SessionCodec([old, new], max_age_seconds=EIGHT_HOURS, clock=now)
    session = rotating.new(zuid="1", zgid="2", name="Ada", email=None, company=None)
    cookie = rotating.dumps(session)
    assert SessionCodec([new], max_age_seconds=EIGHT_HOURS, clock=now).loads(cookie) == session
    assert SessionCodec([old], max_age_seconds=EIGHT_HOURS, clock=now).loads(cookie) is None


async def test_session_older_than_its_max_age_is_a_401_page(world: PageWorld, owner: Browser):
    assert (await owner.get("/manage")).status == 200
    world.clock.advance(EIGHT_HOURS + 1)
    page = await owner.get("/manage")
    assert page.status == 401
    assert page.headers["Content-Type"].startswith("text/html")
    assert "open the subscription page again from the app" in page.text


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "a.b.c", "....", "!!!.AAAA.BBBB", ".eJyrVkrLz1eyUkpKLFKqBQA.AAAA.BBBB", "é"],
)
async def test_malformed_session_cookie_is_a_401_page_not_a_500(world: PageWorld, cookie: str):
    browser = await world.browser()
    page = await browser.get("/manage", headers={"Cookie": f"broker_session={cookie}"})
    assert page.status == 401
    assert page.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("cookie", ["garbage", "a.b.c", "eyJ6dWlkIjoiMSJ9", "!!!.AAAA.BBBB"])
async def test_malformed_session_cookie_on_action_pages_is_a_401_and_changes_nothing(
    world: PageWorld, cookie: str
):
    browser = await world.browser()
    header = {"Cookie": f"broker_session={cookie}"}
    page = await browser.get("/manage/pause", headers=header)
    assert page.status == 401, page.text
    assert "open the subscription page again from the app" in page.text
    posted = await browser.post("/manage/cancel", data={"csrf_token": "x"}, headers=header)
    assert posted.status == 401
    assert await world.audit() == []


async def test_genuine_cookie_cut_short_is_a_401_page(world: PageWorld, owner: Browser):
    cookie = owner.session_cookie()
    assert cookie is not None
    for value in (cookie[:-4], cookie.split(".")[0]):
        page = await (await world.browser()).get(
            "/manage", headers={"Cookie": f"broker_session={value}"}
        )
        assert page.status == 401, page.text


async def test_session_just_inside_its_max_age_still_opens(world: PageWorld, owner: Browser):
    world.clock.advance(EIGHT_HOURS - 5)
    assert (await owner.get("/manage")).status == 200
    world.clock.advance(10)
    assert (await owner.post("/manage/pause", data={"csrf_token": "x"})).status == 401


# --- a member of the org, not its billing owner ---------------------------------------------------


async def test_member_sees_the_subscription_read_only(world: PageWorld, live: str):
    member = await world.signed_in(visitor(MEMBER_ZUID, email="member@example.com"))
    page = await member.get("/manage")
    assert page.status == 200
    assert 'class="status status-live"' in page.text
    assert "Only your organisation's billing owner can change this subscription." in page.text
    for link in ACTION_LINKS:
        assert link not in page.text


@pytest.mark.parametrize("action", ["change", "cancel", "pause"])
async def test_member_cannot_open_or_post_an_action_and_is_told_why(
    world: PageWorld, live: str, action: str
):
    member = await world.signed_in(visitor(MEMBER_ZUID, email="member@example.com"))
    await world.settle()
    before, audit_rows = snapshot(world), len(await world.audit())
    shown = await member.get(f"/manage/{action}")
    posted = await member.submit(f"/manage/{action}", POSTED_ACTIONS[action])
    for page in (shown, posted):
        assert page.status == 403
        assert OWNER_ONLY in page.text
        assert "ask the person who subscribed, or the vendor" in page.text
    await assert_nothing_changed(world, before, audit_rows)


async def test_member_cannot_reactivate_or_resume(world: PageWorld, owner: Browser, live: str):
    await owner.submit("/manage/cancel", {"when": "term_end", "confirm": "yes"})
    member = await world.signed_in(visitor(MEMBER_ZUID, email="member@example.com"))
    page = await member.submit("/manage/reactivate")
    assert page.status == 403
    assert OWNER_ONLY in page.text
    assert world.sim.subscriptions[live].status == "non_renewing"
    await owner.submit("/manage/reactivate")
    await owner.submit("/manage/pause", {"resume_on": "2026-06-20"})
    page = await member.submit("/manage/resume")
    assert page.status == 403
    assert world.sim.subscriptions[live].status == "paused"


async def test_members_can_manage_lets_a_member_change_the_subscription(
    make_world: WorldFactory,
):
    world = await make_world(landing={"members_can_manage": True})
    owner = await world.signed_in()
    live = await world.subscribed(owner)
    member = await world.signed_in(visitor(MEMBER_ZUID, email="member@example.com"))
    page = await member.get("/manage")
    assert 'href="/manage/change"' in page.text
    assert 'href="/manage/cancel"' in page.text
    changed = await member.submit(
        "/manage/change",
        {"planid": STANDARD, "frequency": "monthly", "users": "2", "confirm": "yes"},
    )
    assert (changed.status, changed.location) == (303, "/manage")
    assert world.sim.subscriptions[live].quantity == 2
    await world.platform.wait_until(lambda p: len(p.applied) == 2)
    assert world.calls()[-1].method == "PUT"
    [audit] = await world.audit("change")
    assert (audit["zuid"], audit["zgid"], audit["result"]) == (MEMBER_ZUID, OWNER_ZGID, "ok")


# --- another organisation -------------------------------------------------------------------------


async def test_another_org_never_sees_the_subscription(world: PageWorld, live: str):
    other = await world.signed_in(visitor(OTHER_ZUID, OTHER_ZGID, email=OTHER_EMAIL))
    page = await other.get("/manage")
    assert page.status == 200
    assert "no subscription yet" in page.text
    assert live not in page.text
    assert "Standard" not in page.text
    assert "status-live" not in page.text
    assert 'href="/manage/subscribe"' in page.text  # it may buy its own


@pytest.mark.parametrize("action", ["cancel", "change", "pause", "reactivate", "resume"])
async def test_another_org_cannot_act_on_the_subscription(world: PageWorld, live: str, action: str):
    other = await world.signed_in(visitor(OTHER_ZUID, OTHER_ZGID, email=OTHER_EMAIL))
    await world.settle()
    before, audit_rows = snapshot(world), len(await world.audit())
    # Naming the subscription in the form does not help: actions act on the session's org only.
    page = await other.submit(
        f"/manage/{action}", {**POSTED_ACTIONS[action], "subscription_id": live}
    )
    assert page.status == 409  # its org has no subscription this action could apply to
    assert "your organisation has no running subscription to change" in page.text
    assert live not in page.text
    await assert_nothing_changed(world, before, audit_rows)


async def test_another_org_cannot_return_from_or_resume_this_orgs_checkout(
    world: PageWorld, owner: Browser
):
    opened = await world.open_checkout(owner, users=6)
    other = await world.signed_in(visitor(OTHER_ZUID, OTHER_ZGID, email=OTHER_EMAIL))
    page = await other.get("/manage/return", params={"hostedpage_id": opened.hostedpage_id})
    assert page.status == 403
    assert "this checkout was started by another organisation" in page.text
    form = await other.get("/manage/subscribe", params={"resume": opened.hostedpage_id})
    assert form.status == 200
    assert 'name="users" type="number" min="1" step="1" inputmode="numeric" value="1"' in form.text
    [checkout] = await world.rows("SELECT status FROM checkouts")
    assert checkout["status"] == "created"  # still open for its own org
    assert [a["action"] for a in await world.audit()] == ["subscribe"]


# --- signed links ---------------------------------------------------------------------------------


def signed(world: PageWorld, *, age: float = 0.0, **params: str) -> dict[str, str]:
    values = {**visitor(), "ts": str(int(world.clock() - age)), "nonce": token_hex(8), **params}
    return {**values, "sig": sign_link(values.items(), LINK_SECRET)}


@pytest.fixture
async def signing_world(make_world: WorldFactory) -> PageWorld:
    return await make_world(landing={"link_secret": LINK_SECRET, "link_tolerance_seconds": 300.0})


@pytest.mark.parametrize("how", ["query", "form"])
@pytest.mark.parametrize("age", [0.0, 290.0, -290.0])
async def test_signed_link_within_the_tolerance_opens_the_page(
    signing_world: PageWorld, how: str, age: float
):
    browser = await signing_world.browser()
    link = signed(signing_world, age=age)
    if how == "query":
        page = await browser.enter(link, sign=False)
    else:
        page = await browser.post("/manage", data=link)
    assert (page.status, page.location) == (303, "/manage"), page.text
    assert browser.session()["zgid"] == OWNER_ZGID
    assert (await browser.get("/manage")).status == 200


def altered(world: PageWorld) -> dict[str, str]:
    link = signed(world)
    return {**link, "zgid": OTHER_ZGID}


REFUSED_LINKS: dict[str, Callable[[PageWorld], dict[str, str]]] = {
    "altered_zgid": altered,
    "altered_name": lambda w: {**signed(w), "display_name": "Mallory"},
    "added_parameter": lambda w: {**signed(w), "subscription_id": "2077000000300001"},
    "stale_ts": lambda w: signed(w, age=301.0),
    "future_ts": lambda w: signed(w, age=-301.0),
    "missing_sig": lambda w: {k: v for k, v in signed(w).items() if k != "sig"},
    "missing_ts": lambda w: {
        **visitor(),
        "sig": sign_link(visitor().items(), LINK_SECRET),
    },
    "wrong_secret": lambda w: {
        **signed(w),
        "sig": sign_link({**visitor(), "ts": str(int(w.clock()))}.items(), "x" * 32),
    },
    "missing_nonce": lambda w: {k: v for k, v in signed(w).items() if k != "nonce"},
}


@pytest.mark.parametrize("case", list(REFUSED_LINKS))
async def test_altered_stale_or_unsigned_link_is_refused(signing_world: PageWorld, case: str):
    browser = await signing_world.browser()
    page = await browser.enter(REFUSED_LINKS[case](signing_world), sign=False)
    assert page.status == 403
    assert "this link is not valid any more, or it was changed" in page.text
    assert "Subscription menu" in page.text
    assert browser.session_cookie() is None
    assert await signing_world.rows("SELECT * FROM users") == []


# --- hostile names --------------------------------------------------------------------------------

SCRIPT_NAME = "<script>alert(1)</script>"
TRICKY_COMPANY = "\"><img src=x onerror=alert(1)>{{7*7}}'"
SCRIPT_SHOWN = "&lt;script&gt;alert(1)&lt;/script&gt;"
COMPANY_SHOWN = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;{{7*7}}&#39;"


def assert_inert(page: Page, *, shows_name: bool) -> None:
    """Wherever the names appear they appear escaped, whole; pages about the viewer show them."""
    assert page.status < 500, page.text
    assert "<script" not in page.text
    assert "<img" not in page.text
    rest = page.text.replace(SCRIPT_SHOWN, "").replace(COMPANY_SHOWN, "")
    assert "alert(1)" not in rest
    assert "{{7*7}}" not in rest
    if shows_name:
        assert f"{SCRIPT_SHOWN} · {COMPANY_SHOWN}" in page.text


async def test_hostile_names_are_escaped_on_every_page(world: PageWorld):
    browser = await world.signed_in(visitor(display_name=SCRIPT_NAME, company_name=TRICKY_COMPANY))
    pages: list[tuple[str, Page, bool]] = [("overview", await browser.get("/manage"), True)]
    pages.append(("plan form", await browser.get("/manage/subscribe"), True))
    invalid = await browser.submit(
        "/manage/subscribe", {"planid": STANDARD, "frequency": "monthly", "users": "0"}
    )
    pages.append(("plan form, invalid", invalid, True))
    failed = await world.open_checkout(browser)
    back = await world.come_back(browser, await world.pay(failed.hostedpage_id, outcome="fail"))
    pages.append(("outcome", back, False))
    pages.append(("error", await browser.get("/manage/return?hostedpage_id=1"), False))
    live = await world.subscribed(browser)
    pages.append(("overview, live", await browser.get("/manage"), True))
    pages.append(("change form", await browser.get("/manage/change"), True))
    pages.append(("cancel form", await browser.get("/manage/cancel"), True))
    pause = await browser.get("/manage/pause", params={"resume_on": "2026-06-20"})
    pages.append(("pause form", pause, True))
    for name, page, shows_name in pages:
        try:
            assert_inert(page, shows_name=shows_name)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
    # Billing got the names as data, unchanged, for its own (escaped) pages.
    customer = world.sim.subscriptions[live].customer
    assert (customer.display_name, customer.company_name) == (TRICKY_COMPANY, TRICKY_COMPANY)


# --- headers and cookies --------------------------------------------------------------------------


async def test_every_html_page_has_a_csp_that_allows_forms_only_to_self_and_billing(
    world: PageWorld, owner: Browser, live: str
):
    stranger = await world.browser()
    pages = {
        "overview": await owner.get("/manage"),
        "plan form": await owner.get("/manage/change"),
        "cancel form": await owner.get("/manage/cancel"),
        "pause form": await owner.get("/manage/pause"),
        "invalid form": await owner.submit("/manage/change", {"users": "0"}),
        "csrf refusal": await owner.post("/manage/cancel", data={}),
        "not found": await owner.get("/manage/return?hostedpage_id=1"),
        "outcome": await owner.get(
            "/manage/return",
            params={"hostedpage_id": (await dearer_checkout(world, owner)).hostedpage_id},
        ),
        "no session": await stranger.get("/manage"),
        "bad link": await stranger.enter({"zuid": "x"}),
    }
    for name, page in pages.items():
        assert page.headers["Content-Type"].startswith("text/html"), name
        policy = page.headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
        assert directives.get("form-action") == ["'self'", world.billing_origin], (name, policy)
        assert directives.get("default-src") == ["'none'"], (name, policy)
        assert "script-src" not in directives, (name, policy)
        assert directives.get("frame-ancestors") == ["'none'"], (name, policy)
    assert {page.status for page in pages.values()} == {200, 401, 403, 404, 400, 409, 422}


async def dearer_checkout(world: PageWorld, owner: Browser) -> Page:
    return await world.open_checkout(owner, planid=PROFESSIONAL, action="change")


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded", "secure"),
    [(True, "https", True), (True, None, False), (True, "http", False), (False, "https", False)],
)
async def test_session_cookie_is_secure_only_behind_a_tls_proxy_saying_https(
    make_world: WorldFactory, behind_proxy: bool, forwarded: str | None, secure: bool
):
    world = await make_world(server={"behind_tls_proxy": behind_proxy})
    browser = await world.browser()
    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    page = await browser.enter(headers=headers)
    assert page.status == 303
    morsel = set_cookies(page)["broker_session"]
    assert bool(morsel["secure"]) is secure
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
