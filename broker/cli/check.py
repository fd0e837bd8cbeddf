"""What ``broker check-config`` adds to loading the settings: warnings about settings that load
but are probably not what the operator meant, and (``--online``) a test of the credentials.

Warnings: a ``BROKER_*`` variable that is no setting (pydantic-settings ignores it silently, so
``BROKER_PLATFORM_APP_DOMAIN`` with one underscore would leave the real setting unset), an unset
session secret, no landing verification. The online checks make only calls that change nothing:
a token refresh and, for each read scope the broker needs, one read with it (``billing_scopes``),
naming each scope the refresh token lacks; the write scopes cannot be tested without changing a
subscription, so they are listed to grant. For the Developer Console, which has no documented
read call (docs/contracts.md §1 [unsure]), a plain GET of its base URL, without the
zapikey, which proves DNS, TCP and TLS but not the key. Nothing printed here carries a secret.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import get_args

import aiohttp
from pydantic import BaseModel

from broker.clients.billing import BillingClient
from broker.clients.billing_scopes import READ_PROBES, WRITE_SCOPES, ScopeProbe
from broker.config import PausePolicy, Settings
from broker.errors import BillingError, BillingNotFound, BillingScopeMissing
from broker.manage.identity import verification_warning
from broker.secret_env import ENV_PREFIX, FILE_SUFFIX

# BROKER_ variables that are read, but are not settings.
NON_SETTING_VARIABLES = frozenset(
    {
        "BROKER_CONFIG",  # the TOML file (cli)
        "BROKER_BACKUP_KEEP",  # how many nightly copies deploy/broker-backup.service keeps
    }
)
ONLINE_TIMEOUT_SECONDS = 10.0


def setting_variables(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> set[str]:
    """Every variable that sets something: each section and key at every depth (a whole section
    may be given as JSON), upper case."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        names.add(variable)
        section = _model_in(field.annotation)
        if section is not None:
            names |= setting_variables(section, f"{variable}__")
    return names


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The settings section an annotation holds (``BillingSettings | None`` included)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``BROKER_*`` variables that set nothing, each with the closest known name (or None)."""
    settings = setting_variables()
    known = settings | {name + FILE_SUFFIX for name in settings} | NON_SETTING_VARIABLES
    unknown = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            unknown.append((name, _closest(upper, known)))
    return unknown


def _closest(name: str, known: set[str]) -> str | None:
    """The known name most like ``name``, compared without the prefix every name shares."""
    tails = {candidate[len(ENV_PREFIX) :]: candidate for candidate in known}
    close = difflib.get_close_matches(name[len(ENV_PREFIX) :], sorted(tails), n=1, cutoff=0.75)
    return tails[close[0]] if close else None


def warnings(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """What loads but is probably wrong, one sentence each, naming the variable to set."""
    lines = []
    for name, suggestion in unknown_variables(environ):
        guess = f"; did you mean {suggestion}?" if suggestion else ""
        lines.append(f"{name} is not a setting and is ignored{guess}")
    if settings.landing.session_secret is None:
        lines.append(
            "landing.session_secret is unset: page sessions are signed with a random key and "
            "end at every restart (set BROKER_LANDING__SESSION_SECRET_FILE)"
        )
    verification = verification_warning(settings)
    if verification:
        lines.append(verification)
    product = product_warning(settings)
    if product:
        lines.append(product)
    if settings.plans.pause_policy == PausePolicy.NONE:
        lines.append(
            "plans.pause_policy is not chosen: the page offers no pause, and a pause made in "
            'billing keeps the app working unpaid; set BROKER_PLANS__PAUSE_POLICY to "keep" '
            '(the app keeps working while paused) or "suspend" (Cancel at pause, Add at resume; '
            "the app may remove the org's data)"
        )
    return lines


def product_warning(settings: Settings) -> str | None:
    """Without the app's billing product the broker cannot tell a mistyped plan code of ours
    from another product's plan, so it reports every plan code that does not map."""
    if settings.platform.product_id or settings.billing is not None:
        return None
    return (
        "platform.product_id is unset and billing is not configured to learn it: every "
        "subscription whose plan code does not map, another product's too, is reported as "
        "unmapped_plan (set BROKER_PLATFORM__PRODUCT_ID to the app's Zoho Billing product id)"
    )


def access_choices(settings: Settings) -> list[str]:
    """The vendor's choices about access, named on every check so nobody runs on a default
    without knowing it."""
    money = settings.money_events
    return [
        f"pause policy: {settings.plans.pause_policy.value}",
        f"money events: refund {money.on_refund.value}, chargeback {money.on_chargeback.value}, "
        f"voided invoice {money.on_invoice_voided.value}",
    ]


class Outcome(StrEnum):
    PASSED = "ok"
    FAILED = "FAIL"
    SKIPPED = "skip"


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str

    def line(self) -> str:
        return f"{self.outcome.value:<4} {self.name}: {self.detail}"


async def online_checks(settings: Settings) -> list[CheckResult]:
    """Test the credentials against the services the settings name."""
    timeout = aiohttp.ClientTimeout(total=ONLINE_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return [*await _billing(settings, session), await _platform(settings, session)]


async def _billing(settings: Settings, session: aiohttp.ClientSession) -> list[CheckResult]:
    """The credentials, then one line per scope: each read scope tried, the write scopes listed.
    A failure that is not a scope (credentials, organisation, network) ends it: every other
    call would fail the same way."""
    name = "billing"
    if settings.billing is None:
        return [CheckResult(name, Outcome.SKIPPED, "no [billing] section: webhooks only, no page")]
    # One attempt: an operator at the terminal wants the answer, not a backoff.
    billing = settings.billing.model_copy(update={"max_attempts": 1})
    client = BillingClient(session, billing)
    scopes: list[CheckResult] = []
    for probe in READ_PROBES:
        try:
            scopes.append(await _read_scope(client, probe))
        except BillingError as error:
            hint = f" ({error.hint})" if error.hint else ""
            return [CheckResult(name, Outcome.FAILED, f"{error.message}{hint}")]
    grant = CheckResult(
        f"{name} write scopes",
        Outcome.SKIPPED,
        "not tested, as each call would change a customer or a subscription; grant these: "
        + ", ".join(WRITE_SCOPES),
    )
    credentials = CheckResult(
        name,
        Outcome.PASSED,
        f"token refreshed at {billing.resolved_accounts_url}; organization "
        f"{billing.organization_id} answered",
    )
    return [credentials, *scopes, grant]


async def _read_scope(client: BillingClient, probe: ScopeProbe) -> CheckResult:
    """One read that needs ``probe.scope``; raises what is not about the scope."""
    name = f"billing {probe.scope}"
    call = f"GET {probe.path}"
    try:
        await client.request("GET", probe.path, params=dict(probe.params) or None)
    except BillingScopeMissing as error:
        return CheckResult(name, Outcome.FAILED, f"missing: {error.message} ({error.hint})")
    except BillingNotFound:
        if not probe.absent_ok:
            raise
        return CheckResult(name, Outcome.PASSED, f"{call} allowed (no such record: as expected)")
    return CheckResult(name, Outcome.PASSED, f"{call} answered")


async def _platform(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    name = "platform"
    url = settings.platform.resolved_base_url
    try:
        async with session.get(url + "/", allow_redirects=False) as response:
            status = response.status
    except aiohttp.ClientConnectorCertificateError:
        return CheckResult(name, Outcome.FAILED, f"{url}: its TLS certificate is not valid")
    except aiohttp.ClientConnectorError as error:
        reason = error.os_error.strerror or type(error.os_error).__name__
        return CheckResult(name, Outcome.FAILED, f"cannot reach {url} ({reason})")
    except TimeoutError:
        return CheckResult(name, Outcome.FAILED, f"{url} did not answer in time")
    except aiohttp.ClientError as error:
        return CheckResult(name, Outcome.FAILED, f"{url}: {type(error).__name__}")
    return CheckResult(
        name,
        Outcome.PASSED,
        f"{url} reachable (HTTP {status}); the zapikey is not tested: the Developer Console "
        "has no call that reads without changing a subscription",
    )
