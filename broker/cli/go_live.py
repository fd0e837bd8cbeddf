"""The go-live checklist of docs/zoho-setup.md, as ``broker check-config --online`` prints it.

Every line of the guide's checklist is here, in the guide's order and with its key: the ones the
broker can verify (from the settings, or with the online checks' calls and one read of the plan
catalog) are answered ``ok`` or ``FAIL`` with what was found; the rest are printed ``manual``
with what to look at, so the vendor works down one list. A test keeps the guide and this list
equal. Nothing printed carries a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from broker.cli.check import CheckResult, Outcome, unknown_variables
from broker.clients.billing import BillingClient
from broker.config import LandingVerification, PausePolicy, Settings
from broker.core.catalog import build_catalog
from broker.errors import BillingError

GUIDE = 'docs/zoho-setup.md, "Go-live checklist"'


class Verified(StrEnum):
    SETTINGS = "settings"  # from the loaded settings alone
    ONLINE = "online"  # with a call to Zoho
    MANUAL = "manual"  # the vendor looks; the broker cannot see it


class Mark(StrEnum):
    PASSED = "ok"
    FAILED = "FAIL"
    MANUAL = "manual"
    SKIPPED = "skip"  # checkable, but not here (no [billing] section)


@dataclass(frozen=True)
class Item:
    key: str
    how: Verified
    manual_hint: str = ""


CHECKLIST: tuple[Item, ...] = (
    Item("settings", Verified.SETTINGS),
    Item("public address", Verified.SETTINGS),
    Item("landing verification", Verified.SETTINGS),
    Item("session secret", Verified.SETTINGS),
    Item("pause policy", Verified.SETTINGS),
    Item("billing credentials", Verified.ONLINE),
    Item("billing read scopes", Verified.ONLINE),
    Item("billing plans", Verified.ONLINE),
    Item("platform address", Verified.ONLINE),
    Item(
        "billing write scopes",
        Verified.MANUAL,
        "the refresh token was generated with the full scope list of step 4 (the write scopes "
        "cannot be tried without changing a subscription)",
    ),
    Item("custom fields", Verified.MANUAL, "cf_zuid and cf_zgid on customers and subscriptions"),
    Item(
        "billing webhook",
        Verified.MANUAL,
        "subscription events, header zapikey, default payload; a test event shows success",
    ),
    Item("manage url", Verified.MANUAL, "the Developer Console's Manage Subscription URL"),
    Item(
        "link signing",
        Verified.MANUAL,
        "the Deluge function produces the worked example's canonical string",
    ),
    Item("payment gateway", Verified.MANUAL, "a live gateway connected in billing, test mode off"),
    Item(
        "first purchase", Verified.MANUAL, "a real purchase reached the app (deliveries list: done)"
    ),
    Item("backups", Verified.MANUAL, "nightly backups run; a restore was tried"),
)


@dataclass(frozen=True)
class Line:
    number: int
    key: str
    mark: Mark
    detail: str

    def text(self) -> str:
        return f"  [{self.mark.value}] {self.number}. {self.key}: {self.detail}"


async def go_live(
    settings: Settings, environ: Mapping[str, str], online: Sequence[CheckResult]
) -> list[Line]:
    """The checklist, each line answered from the settings, the online checks' results and
    (for the plans) one read of billing's catalog."""
    answers = {
        **_from_settings(settings, environ),
        **_from_online(online),
        "billing plans": await _plans(settings),
    }
    lines = []
    for number, item in enumerate(CHECKLIST, start=1):
        if item.how is Verified.MANUAL:
            lines.append(Line(number, item.key, Mark.MANUAL, item.manual_hint))
        else:
            mark, detail = answers[item.key]
            lines.append(Line(number, item.key, mark, detail))
    return lines


def _from_settings(settings: Settings, environ: Mapping[str, str]) -> dict[str, tuple[Mark, str]]:
    unknown = [name for name, _ in unknown_variables(environ)]
    landing = settings.landing
    mode = landing.verification
    public = landing.public_url
    return {
        "settings": (
            (Mark.FAILED, f"not settings, ignored: {', '.join(unknown)}")
            if unknown
            else (Mark.PASSED, "loaded; every BROKER_ variable is a setting")
        ),
        "public address": (
            (Mark.PASSED, f"landing.public_url is {public}")
            if public and public.startswith("https://")
            else (
                Mark.FAILED,
                "set BROKER_LANDING__PUBLIC_URL to the broker's https:// address"
                + (f" (now {public})" if public else ""),
            )
        ),
        "landing verification": (
            (Mark.PASSED, f"landing.verify is {mode.value}")
            if mode in (LandingVerification.SIGNED, LandingVerification.ZOHO)
            else (
                Mark.FAILED,
                "set BROKER_LANDING__LINK_SECRET_FILE (signed links) or "
                "BROKER_LANDING__VERIFY=zoho",
            )
        ),
        "session secret": (
            (Mark.PASSED, "set")
            if landing.session_secret is not None
            else (Mark.FAILED, "set BROKER_LANDING__SESSION_SECRET_FILE")
        ),
        "pause policy": (
            (Mark.PASSED, f"plans.pause_policy is {settings.plans.pause_policy.value}")
            if settings.plans.pause_policy is not PausePolicy.NONE
            else (Mark.FAILED, 'set BROKER_PLANS__PAUSE_POLICY to "keep" or "suspend"')
        ),
    }


def _from_online(online: Sequence[CheckResult]) -> dict[str, tuple[Mark, str]]:
    """The online checks' lines, grouped as the checklist names them."""
    credentials = [r for r in online if r.name == "billing"]
    scopes = [r for r in online if r.name.startswith("billing ZohoSubscriptions.")]
    platform = [r for r in online if r.name == "platform"]
    answers = {
        "billing credentials": _one(credentials),
        "platform address": _one(platform),
    }
    if credentials and credentials[0].outcome is not Outcome.PASSED:
        answers["billing read scopes"] = (_mark(credentials[0].outcome), "see billing credentials")
    else:
        failed = [r.name.removeprefix("billing ") for r in scopes if r.outcome is Outcome.FAILED]
        answers["billing read scopes"] = (
            (Mark.FAILED, f"missing: {', '.join(failed)}")
            if failed
            else (Mark.PASSED, f"all {len(scopes)} granted")
        )
    return answers


def _one(results: list[CheckResult]) -> tuple[Mark, str]:
    if not results:
        return (Mark.SKIPPED, "not checked")
    return (_mark(results[0].outcome), results[0].detail)


def _mark(outcome: Outcome) -> Mark:
    return {Outcome.PASSED: Mark.PASSED, Outcome.FAILED: Mark.FAILED}.get(outcome, Mark.SKIPPED)


async def _plans(settings: Settings) -> tuple[Mark, str]:
    """Billing sells at least one active plan whose code is this app domain's."""
    if settings.billing is None:
        return (Mark.SKIPPED, "no [billing] section")
    domain = settings.platform.app_domain
    billing = settings.billing.model_copy(update={"max_attempts": 1})
    timeout = aiohttp.ClientTimeout(total=billing.request_timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = BillingClient(session, billing)
        try:
            catalog = build_catalog(
                await client.list_plans(),
                await client.list_addons(),
                app_domain=domain,
                plan_settings=settings.plans,
            )
        except BillingError as error:
            return (Mark.FAILED, f"the plan catalog could not be read: {error.message}")
    if not catalog.plans:
        return (
            Mark.FAILED,
            f"no active plan's code starts with {domain}_: create the plans of step 2 with the "
            "Developer Console's codes",
        )
    ids = ", ".join(plan.planid for plan in catalog.plans)
    return (Mark.PASSED, f"{len(catalog.plans)} active plans of {domain} (plan ids {ids})")
