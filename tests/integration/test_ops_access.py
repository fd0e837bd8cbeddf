"""Who reaches the operator console: off unless configured, a password checked against its
scrypt hash, its own cookie (never a customer's), and a CSRF token on every form."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from broker.core.operator_password import hash_password, verify_password
from broker.manage.appkeys import session_codec_key
from broker.manage.sessions import COOKIE_NAME as CUSTOMER_COOKIE
from broker.ops.access import COOKIE_NAME as OPS_COOKIE
from broker.ops.appkeys import ops_codec_key
from tests.conftest import BrokerFactory
from tests.support.basics import ZGID, ZUID
from tests.support.ops import OPS, PASSWORD, PASSWORD_HASH, sign_in


def test_a_password_hash_verifies_its_password_only():
    stored = hash_password("s3cret", n=2**10)
    assert stored.startswith("scrypt$1024$8$1$")
    assert "s3cret" not in stored
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret ", stored)
    assert not verify_password("s3cret", "scrypt$1024$8$1$bad$hash")
    assert hash_password("s3cret", n=2**10) != stored  # salted


async def test_console_is_a_404_unless_a_credential_is_configured(make_broker: BrokerFactory):
    client = await make_broker()
    for path in ("/ops", "/ops/login", "/ops/deliveries"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 404, path


async def test_without_a_session_every_view_sends_to_the_sign_in_page(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    for path in ("/ops", "/ops/events", "/ops/deliveries?state=dead", "/ops/parked", "/ops/audit"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/ops/login"
    login = await client.get("/ops/login")
    assert login.status == 200
    assert 'type="password"' in await login.text()
    assert "script-src" not in login.headers["Content-Security-Policy"]
    assert "default-src 'none'" in login.headers["Content-Security-Policy"]


async def test_a_wrong_password_is_refused_and_logged_without_the_password(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS)
    with capture_logs() as logs:
        response = await client.post(
            "/ops/login", data={"password": "wrong"}, allow_redirects=False
        )
    assert response.status == 401
    assert "not the operator" in await response.text()
    assert OPS_COOKIE not in response.cookies
    refused = [entry for entry in logs if entry["event"] == "ops.login_refused"]
    assert refused == [
        {"event": "ops.login_refused", "reason": "wrong_password", "log_level": "warning"}
    ]
    assert "wrong" not in str(logs).replace("wrong_password", "")
    assert (await client.get("/ops", allow_redirects=False)).status == 303


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded", "secure"),
    [(True, "https", True), (True, None, False), (True, "http", False), (False, "https", False)],
)
async def test_console_cookie_is_secure_only_behind_a_tls_proxy_saying_https(
    make_broker: BrokerFactory, behind_proxy: bool, forwarded: str | None, secure: bool
):
    client = await make_broker(ops=OPS, server={"behind_tls_proxy": behind_proxy})
    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    response = await client.post(
        "/ops/login", data={"password": PASSWORD}, headers=headers, allow_redirects=False
    )
    assert response.status == 303
    cookie = response.cookies[OPS_COOKIE]
    assert bool(cookie["secure"]) is secure
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/ops"


async def test_the_right_password_opens_the_console_with_its_own_cookie(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS)
    response = await client.post("/ops/login", data={"password": PASSWORD}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/ops"
    cookie = response.cookies[OPS_COOKIE]
    assert cookie["path"] == "/ops"
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert PASSWORD not in cookie.value
    assert PASSWORD_HASH not in cookie.value
    home = await client.get("/ops")
    assert home.status == 200
    assert "Dead letters" in await home.text()


async def test_a_customer_session_gives_no_access_to_the_console(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    codec = client.app[session_codec_key]
    customer = codec.dumps(codec.new(zuid=ZUID, zgid=ZGID, name="Ana", email=None, company=None))
    for name in (CUSTOMER_COOKIE, OPS_COOKIE):
        response = await client.get("/ops", cookies={name: customer}, allow_redirects=False)
        assert response.status == 303, name
        assert response.headers["Location"] == "/ops/login"


async def test_an_operator_session_gives_no_access_to_the_customer_page(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS)
    ops_cookie = client.app[ops_codec_key].dumps(client.app[ops_codec_key].new("operator"))
    anonymous = await client.get("/manage", allow_redirects=False)
    for name in (CUSTOMER_COOKIE, OPS_COOKIE):
        client.session.cookie_jar.clear()
        response = await client.get("/manage", cookies={name: ops_cookie}, allow_redirects=False)
        assert response.status == anonymous.status != 200, name
        assert "Ana" not in await response.text()


async def test_a_form_without_the_csrf_token_is_refused(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    for data in ({}, {"csrf": "forged"}):
        response = await client.post("/ops/deliveries/retry", data=data)
        assert response.status == 403
        assert "did not come from the console" in await response.text()
    response = await client.post("/ops/logout", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    assert (await client.get("/ops", allow_redirects=False)).status == 303
