"""``broker check-config``: the warnings about settings that load but are probably wrong, and
``--online``, which tests the credentials against the real simulators of both Zoho sides.

``main`` runs in a worker thread for the online tests (it starts its own event loop), while the
simulators are served on port 0 by the test's loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import structlog
from aiohttp.test_utils import TestServer

from broker.cli import main
from broker.cli.check import setting_variables, unknown_variables
from broker.simulators.billing.scopes import ALL_SCOPES
from broker.simulators.platform import PlatformSimulator
from tests.support.basics import LINK_SECRET
from tests.support.billing import CLIENT_ID, CLIENT_SECRET, ORG, REFRESH_TOKEN, make_sim

ZAPIKEY = "operator-zapikey-not-for-printing"
SESSION_SECRET = "session-secret-not-for-printing"
ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Only the variables a test sets; structlog back to its defaults afterwards (--online
    configures it)."""
    for name in list(os.environ):
        if name.upper().startswith("BROKER_") or name == "PORT":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "envapp")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY", ZAPIKEY)
    # A chosen pause policy, so only the tests about it see its warning.
    monkeypatch.setenv("BROKER_PLANS__PAUSE_POLICY", "keep")
    yield
    structlog.reset_defaults()


PRODUCT_ID = "2077000000010001"


def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings with nothing to warn about: a link secret, a session secret, the product."""
    monkeypatch.setenv("BROKER_LANDING__LINK_SECRET", LINK_SECRET)
    monkeypatch.setenv("BROKER_LANDING__SESSION_SECRET", SESSION_SECRET)
    monkeypatch.setenv("BROKER_PLATFORM__PRODUCT_ID", PRODUCT_ID)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


# --- unknown variables ---------------------------------------------------------------------------


def test_a_single_underscore_typo_is_warned_with_the_right_name(capsys, monkeypatch):
    quiet(monkeypatch)
    monkeypatch.setenv("BROKER_PLATFORM_APP_DOMAIN", "typoapp")
    code, _, err = run(capsys, "check-config")
    assert code == 0  # the settings themselves load: the typo is only ignored
    assert warnings_in(err) == [
        "warning: BROKER_PLATFORM_APP_DOMAIN is not a setting and is ignored; "
        "did you mean BROKER_PLATFORM__APP_DOMAIN?"
    ]


def test_a_misspelt_file_variable_suggests_the_file_form(capsys, monkeypatch, tmp_path: Path):
    quiet(monkeypatch)
    secret_file = tmp_path / "signing"
    secret_file.write_text("signing-secret-0123")
    monkeypatch.setenv("BROKER_WEBHOOKS_SIGNING_SECRET_FILE", str(secret_file))
    code, out, err = run(capsys, "check-config")
    assert code == 0  # read, but it sets nothing: webhooks would run unsigned
    assert '"signing_secret": null' in out
    assert "did you mean BROKER_WEBHOOKS__SIGNING_SECRET_FILE?" in err


def test_a_name_like_nothing_known_is_warned_without_a_guess(capsys, monkeypatch):
    quiet(monkeypatch)
    monkeypatch.setenv("BROKER_COLOUR", "blue")
    _, _, err = run(capsys, "check-config")
    assert warnings_in(err) == ["warning: BROKER_COLOUR is not a setting and is ignored"]


def test_every_known_form_passes_without_a_warning(capsys, monkeypatch, tmp_path: Path):
    quiet(monkeypatch)
    secret_file = tmp_path / "zapikey"
    secret_file.write_text(ZAPIKEY)
    monkeypatch.delenv("BROKER_PLATFORM__ZAPIKEY")
    monkeypatch.setenv("BROKER_PLATFORM__ZAPIKEY_FILE", str(secret_file))  # the _FILE form
    monkeypatch.setenv("broker_server__port", "8081")  # any case, as pydantic reads it
    monkeypatch.delenv("BROKER_PLANS__PAUSE_POLICY")
    monkeypatch.setenv("BROKER_PLANS", '{"pause_policy": "keep"}')  # a whole section as JSON
    monkeypatch.setenv("BROKER_BACKUP_KEEP", "14")  # read by deploy/broker-backup.service
    code, _, err = run(capsys, "check-config")
    assert code == 0, err
    assert warnings_in(err) == []


def test_known_names_reach_nested_sections():
    names = setting_variables()
    assert {
        "BROKER_LANDING__OIDC__CLIENT_SECRET",
        "BROKER_BILLING__REFRESH_TOKEN",
        "BROKER_WEBHOOKS__EXTRA_ZAPIKEYS",
    } <= names
    assert unknown_variables({"BROKER_LANDING__OIDC__CLIENT_SECRET_FILE": "/x", "HOME": "/"}) == []


# --- the vendor's access choices ---------------------------------------------------------------


def test_an_unchosen_pause_policy_is_named_and_warned_with_the_variable_to_set(capsys, monkeypatch):
    quiet(monkeypatch)
    monkeypatch.delenv("BROKER_PLANS__PAUSE_POLICY")
    code, _, err = run(capsys, "check-config")
    assert code == 0
    assert "pause policy: none" in err.splitlines()
    [warning] = warnings_in(err)
    assert warning.startswith("warning: plans.pause_policy is not chosen: the page offers no pause")
    assert 'set BROKER_PLANS__PAUSE_POLICY to "keep"' in warning
    assert '"suspend"' in warning


@pytest.mark.parametrize("policy", ["keep", "suspend"])
def test_a_chosen_pause_policy_is_named_without_a_warning(capsys, monkeypatch, policy: str):
    quiet(monkeypatch)
    monkeypatch.setenv("BROKER_PLANS__PAUSE_POLICY", policy)
    monkeypatch.setenv("BROKER_MONEY_EVENTS__ON_REFUND", "cancel")
    code, _, err = run(capsys, "check-config")
    assert code == 0
    assert f"pause policy: {policy}" in err.splitlines()
    assert "money events: refund cancel, chargeback record, voided invoice record" in err
    assert warnings_in(err) == []


def test_the_replaced_on_pause_key_fails_naming_pause_policy(capsys, monkeypatch):
    quiet(monkeypatch)
    monkeypatch.setenv("BROKER_PLANS", '{"on_pause": "cancel"}')
    code, _, err = run(capsys, "check-config")
    assert code != 0
    assert "plans.on_pause was replaced by plans.pause_policy" in err
    assert 'on_pause = "cancel" is pause_policy = "suspend"' in err


# --- session secret and verification ------------------------------------------------------------


def test_an_unset_session_secret_is_warned(capsys, monkeypatch):
    monkeypatch.setenv("BROKER_LANDING__LINK_SECRET", LINK_SECRET)
    monkeypatch.setenv("BROKER_PLATFORM__PRODUCT_ID", PRODUCT_ID)
    _, _, err = run(capsys, "check-config")
    assert warnings_in(err) == [
        "warning: landing.session_secret is unset: page sessions are signed with a random key "
        "and end at every restart (set BROKER_LANDING__SESSION_SECRET_FILE)"
    ]


def test_missing_verification_is_warned_beside_the_session_secret(capsys):
    _, _, err = run(capsys, "check-config")
    found = warnings_in(err)
    assert len(found) == 3
    assert "session_secret is unset" in found[0]
    assert "no landing verification is configured" in found[1]
    assert "platform.product_id is unset" in found[2]


def test_no_product_and_no_billing_to_learn_it_from_is_warned(capsys, monkeypatch):
    quiet(monkeypatch)
    monkeypatch.delenv("BROKER_PLATFORM__PRODUCT_ID")
    _, _, err = run(capsys, "check-config")
    assert warnings_in(err) == [
        "warning: platform.product_id is unset and billing is not configured to learn it: "
        "every subscription whose plan code does not map, another product's too, is reported "
        "as unmapped_plan (set BROKER_PLATFORM__PRODUCT_ID to the app's Zoho Billing product id)"
    ]


# --- --online ---------------------------------------------------------------------------------


@pytest.fixture
async def zoho(aiohttp_server: ServerFactory) -> tuple[str, str]:
    """Origins of a billing simulator and a Developer Console simulator, both running."""
    billing = await aiohttp_server(make_sim(app_domain="envapp").app())
    platform = await aiohttp_server(PlatformSimulator(ZAPIKEY).app())
    return (
        str(billing.make_url("")).rstrip("/"),
        str(platform.make_url("")).rstrip("/"),
    )


def point_at(monkeypatch: pytest.MonkeyPatch, billing: str, platform: str, **billing_env: str):
    quiet(monkeypatch)
    monkeypatch.setenv("BROKER_PLATFORM__BASE_URL", platform)
    values = {
        "BASE_URL": f"{billing}/billing/v1",
        "ACCOUNTS_URL": billing,
        "ORGANIZATION_ID": ORG,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REFRESH_TOKEN": REFRESH_TOKEN,
    } | billing_env
    for key, value in values.items():
        monkeypatch.setenv(f"BROKER_BILLING__{key}", value)


async def run_online(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["check-config", "--online"])
    captured = capsys.readouterr()
    for secret in (ZAPIKEY, CLIENT_SECRET, REFRESH_TOKEN, LINK_SECRET, SESSION_SECRET):
        assert secret not in captured.out + captured.err
    return code, captured.out, captured.err


def result_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("ok ", "FAIL ", "skip "))]


WRITE_SCOPES_LINE = (
    "skip billing write scopes: not tested, as each call would change a customer or a "
    "subscription; grant these: ZohoSubscriptions.customers.UPDATE, "
    "ZohoSubscriptions.hostedpages.CREATE, ZohoSubscriptions.subscriptions.CREATE, "
    "ZohoSubscriptions.subscriptions.UPDATE"
)


def read_scope_lines(scope_failing: dict[str, str] | None = None) -> list[str]:
    """One line per read scope, in the order they are tried (docs/contracts.md §4.1); each in
    ``scope_failing`` fails for its call."""
    absent = "allowed (no such record: as expected)"
    calls = [
        ("ZohoSubscriptions.plans.READ", "GET /plans", "answered"),
        ("ZohoSubscriptions.addons.READ", "GET /addons", "answered"),
        ("ZohoSubscriptions.subscriptions.READ", "GET /subscriptions", "answered"),
        ("ZohoSubscriptions.customers.READ", "GET /customers/0", absent),
        ("ZohoSubscriptions.hostedpages.READ", "GET /hostedpages/0", absent),
        ("ZohoSubscriptions.webhooks.READ", "GET /events", "answered"),
    ]
    lines = []
    for scope, call, passed in calls:
        endpoint = (scope_failing or {}).get(scope)
        if endpoint is None:
            lines.append(f"ok   billing {scope}: {call} {passed}")
        else:
            lines.append(
                f"FAIL billing {scope}: missing: Zoho Billing refused a freshly issued access "
                f"token for {endpoint}: the refresh token probably lacks the scope {scope} "
                "(generate a new refresh token with every scope docs/zoho-setup.md lists; "
                "`broker check-config --online` names each one missing)"
            )
    return lines


async def test_online_passes_against_both_simulators(capsys, monkeypatch, zoho):
    billing, platform = zoho
    point_at(monkeypatch, billing, platform)
    code, _, err = await run_online(capsys)
    assert code == 0, err
    assert result_lines(err) == [
        f"ok   billing: token refreshed at {billing}; organization {ORG} answered",
        *read_scope_lines(),
        WRITE_SCOPES_LINE,
        f"ok   platform: {platform} reachable (HTTP 404); the zapikey is not tested: the "
        "Developer Console has no call that reads without changing a subscription",
    ]


@pytest.fixture
async def zoho_without(aiohttp_server: ServerFactory) -> Callable[..., Awaitable[tuple[str, str]]]:
    """Start the simulators with a refresh token granted every scope but ``missing``."""

    async def start(*missing: str) -> tuple[str, str]:
        sim = make_sim(app_domain="envapp")
        sim.grant_scopes(sorted(ALL_SCOPES - set(missing)))
        billing = await aiohttp_server(sim.app())
        platform = await aiohttp_server(PlatformSimulator(ZAPIKEY).app())
        return (str(billing.make_url("")).rstrip("/"), str(platform.make_url("")).rstrip("/"))

    return start


async def test_online_names_the_missing_events_scope(capsys, monkeypatch, zoho_without):
    billing, platform = await zoho_without("ZohoSubscriptions.webhooks.READ")
    point_at(monkeypatch, billing, platform)
    code, _, err = await run_online(capsys)
    assert code == 1
    assert result_lines(err)[1:8] == [
        *read_scope_lines({"ZohoSubscriptions.webhooks.READ": "GET /events"}),
        WRITE_SCOPES_LINE,
    ]


async def test_online_names_every_missing_read_scope(capsys, monkeypatch, zoho_without):
    billing, platform = await zoho_without(
        "ZohoSubscriptions.plans.READ", "ZohoSubscriptions.hostedpages.READ"
    )
    point_at(monkeypatch, billing, platform)
    code, _, err = await run_online(capsys)
    assert code == 1
    assert result_lines(err)[:8] == [
        f"ok   billing: token refreshed at {billing}; organization {ORG} answered",
        *read_scope_lines(
            {
                "ZohoSubscriptions.plans.READ": "GET /plans",
                "ZohoSubscriptions.hostedpages.READ": "GET /hostedpages/{id}",
            }
        ),
        WRITE_SCOPES_LINE,
    ]


async def test_online_fails_on_a_wrong_client_secret(capsys, monkeypatch, zoho):
    billing, platform = zoho
    point_at(monkeypatch, billing, platform, CLIENT_SECRET="not-the-client-secret")
    code, _, err = await run_online(capsys)
    assert code == 1
    assert result_lines(err)[0] == (
        "FAIL billing: Zoho accounts refused the refresh token (invalid_client) (check "
        "billing.client_id, client_secret, refresh_token and data_centre)"
    )
    assert result_lines(err)[1].startswith("ok   platform:")  # the refusal ends billing's checks


async def test_online_fails_on_another_organization(capsys, monkeypatch, zoho):
    billing, platform = zoho
    point_at(monkeypatch, billing, platform, ORGANIZATION_ID="999999")
    code, _, err = await run_online(capsys)
    assert code == 1
    assert result_lines(err)[0].startswith("FAIL billing: This user is not associated")


async def test_online_fails_when_the_platform_cannot_be_reached(capsys, monkeypatch, zoho):
    billing, _ = zoho
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    point_at(monkeypatch, billing, f"http://127.0.0.1:{port}")
    code, _, err = await run_online(capsys)
    assert code == 1
    assert result_lines(err)[-1].startswith(
        f"FAIL platform: cannot reach http://127.0.0.1:{port} ("
    )


async def test_online_skips_billing_when_it_is_not_configured(capsys, monkeypatch, zoho):
    _, platform = zoho
    quiet(monkeypatch)
    monkeypatch.setenv("BROKER_PLATFORM__BASE_URL", platform)
    code, _, err = await run_online(capsys)
    assert code == 0, err
    assert result_lines(err)[0] == "skip billing: no [billing] section: webhooks only, no page"


# --- the go-live checklist of docs/zoho-setup.md ------------------------------------------------

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "zoho-setup.md"
# A row of the guide's checklist table: | 3 | `key`: what the line says | checked |
GUIDE_ROW = re.compile(r"^\| (\d+) \| `([^`]+)`: .+ \| (checked|manual) \|$", re.MULTILINE)
# A line of the command's checklist:   [ok] 3. key: what it found
PRINTED_LINE = re.compile(r"^  \[(ok|FAIL|skip|manual)\] (\d+)\. ([^:]+): (.*)$", re.MULTILINE)


def guide_checklist() -> list[tuple[int, str, str]]:
    text = GUIDE.read_text()
    section = text[text.index("## 9. Go-live checklist") :]
    return [(int(n), key, how) for n, key, how in GUIDE_ROW.findall(section)]


def printed_checklist(err: str) -> dict[tuple[int, str], tuple[str, str]]:
    return {(int(n), key): (mark, detail) for mark, n, key, detail in PRINTED_LINE.findall(err)}


async def test_online_answers_every_checked_line_of_the_guides_go_live_checklist(
    capsys, monkeypatch, zoho
):
    billing, platform = zoho
    point_at(monkeypatch, billing, platform)
    monkeypatch.setenv("BROKER_LANDING__PUBLIC_URL", "https://broker.example.com")
    code, _, err = await run_online(capsys)
    guide = guide_checklist()
    printed = printed_checklist(err)

    assert code == 0, err
    assert len(guide) == 17  # every row of the table was read
    assert [(n, key) for n, key, _ in guide] == list(printed)  # the same lines, in the same order
    checked = {key: printed[(n, key)][0] for n, key, how in guide if how == "checked"}
    manual = {key: printed[(n, key)][0] for n, key, how in guide if how == "manual"}
    assert checked == dict.fromkeys(checked, "ok")
    assert manual == dict.fromkeys(manual, "manual")
    assert printed[(7, "billing read scopes")][1] == "all 6 granted"
    # The billing simulator's catalog for this app domain: free, Standard, a Standard trial,
    # Professional.
    assert printed[(8, "billing plans")][1] == (
        "4 active plans of envapp (plan ids FREE, 1001, 1001T, 1002)"
    )


async def test_a_failing_checklist_line_says_what_to_set(capsys, monkeypatch, zoho):
    billing, platform = zoho
    point_at(monkeypatch, billing, platform)
    monkeypatch.setenv("BROKER_PLATFORM__APP_DOMAIN", "otherapp")  # billing sells none of its plans
    monkeypatch.setenv("BROKER_PLANS__PAUSE_POLICY", "none")
    code, _, err = await run_online(capsys)
    printed = printed_checklist(err)

    assert code == 0, err  # the exit code counts the credential checks only, as the guide says
    assert printed[(2, "public address")] == (
        "FAIL",
        "set BROKER_LANDING__PUBLIC_URL to the broker's https:// address",
    )
    assert printed[(5, "pause policy")] == (
        "FAIL",
        'set BROKER_PLANS__PAUSE_POLICY to "keep" or "suspend"',
    )
    assert printed[(8, "billing plans")] == (
        "FAIL",
        "no active plan's code starts with otherapp_: create the plans of step 2 with the "
        "Developer Console's codes",
    )
    assert printed[(6, "billing credentials")][0] == "ok"


async def test_a_missing_read_scope_fails_its_checklist_line_by_name(
    capsys, monkeypatch, zoho_without
):
    billing, platform = await zoho_without("ZohoSubscriptions.webhooks.READ")
    point_at(monkeypatch, billing, platform)
    _, _, err = await run_online(capsys)

    assert printed_checklist(err)[(7, "billing read scopes")] == (
        "FAIL",
        "missing: ZohoSubscriptions.webhooks.READ",
    )
