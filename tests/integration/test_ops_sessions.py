"""A console session ends when the operator signs out and when the operator's password changes:
a cookie copied before either is refused after it, not honoured for its remaining 8 hours."""

from __future__ import annotations

from structlog.testing import capture_logs

from broker.core.operator_password import hash_password
from broker.ops.access import COOKIE_NAME
from tests.conftest import BrokerFactory, db_rows
from tests.support.ops import OPS, sign_in


async def test_a_cookie_copied_before_sign_out_is_refused_after_it(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    copied = client.session.cookie_jar.filter_cookies(client.make_url("/ops"))[COOKIE_NAME].value
    assert len(await db_rows(client, "SELECT * FROM ops_sessions", [])) == 1

    out = await client.post("/ops/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert await db_rows(client, "SELECT * FROM ops_sessions", []) == []

    client.session.cookie_jar.clear()
    with capture_logs() as logs:
        replayed = await client.get("/ops", cookies={COOKIE_NAME: copied}, allow_redirects=False)
    assert replayed.status == 303
    assert replayed.headers["Location"] == "/ops/login"
    assert {"event": "ops.session_refused", "reason": "ended_or_other_password"} in [
        {k: v for k, v in entry.items() if k in {"event", "reason"}} for entry in logs
    ]
    action = await client.post(
        "/ops/deliveries/retry",
        data={"csrf": csrf},
        cookies={COOKIE_NAME: copied},
        allow_redirects=False,
    )
    assert action.status == 303
    assert action.headers["Location"] == "/ops/login"


async def test_signing_out_one_session_leaves_another_signed_in(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    await sign_in(client)
    first = client.session.cookie_jar.filter_cookies(client.make_url("/ops"))[COOKIE_NAME].value
    client.session.cookie_jar.clear()
    csrf = await sign_in(client)
    await client.post("/ops/logout", data={"csrf": csrf}, allow_redirects=False)
    client.session.cookie_jar.clear()
    still = await client.get("/ops", cookies={COOKIE_NAME: first}, allow_redirects=False)
    assert still.status == 200


async def test_a_new_operator_password_ends_the_sessions_made_with_the_old_one(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS)
    await sign_in(client)
    copied = client.session.cookie_jar.filter_cookies(client.make_url("/ops"))[COOKIE_NAME].value
    await client.close()

    # Restarted with the same settings (same session secret): the session survives.
    same = await make_broker(ops=OPS)
    kept = await same.get("/ops", cookies={COOKIE_NAME: copied}, allow_redirects=False)
    assert kept.status == 200
    await same.close()

    # Restarted with a new password hash, the session secret unchanged: the cookie is refused.
    changed = {**OPS, "password_hash": hash_password("a new passphrase", n=2**10)}
    after = await make_broker(ops=changed)
    refused = await after.get("/ops", cookies={COOKIE_NAME: copied}, allow_redirects=False)
    assert refused.status == 303
    assert refused.headers["Location"] == "/ops/login"


async def test_the_session_record_holds_a_digest_and_expires_with_the_cookie(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops={**OPS, "session_max_age_seconds": 3600})
    await sign_in(client)
    rows = await db_rows(client, "SELECT created_at, expires_at FROM ops_sessions", [])
    assert [row["expires_at"] - row["created_at"] for row in rows] == [3600]
    # The table holds a digest of the session id, never the cookie or the id itself.
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/ops"))[COOKIE_NAME].value
    keys = await db_rows(client, "SELECT session_key FROM ops_sessions", [])
    assert len(keys[0]["session_key"]) == 64
    assert keys[0]["session_key"] not in cookie
