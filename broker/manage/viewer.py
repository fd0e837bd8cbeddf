"""Who is looking at the Manage Subscription page, what their org has, and what they may do.

Authority comes from the session (set from a verified landing visit), never from anything else
the browser sends. Changes belong to the org's billing owner — the zuid in the billing customer's
``cf_zuid`` — unless ``landing.members_can_manage`` widens it. Loading a viewer also re-reads the
org's subscriptions from billing, so the page and the platform converge even if a webhook is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import structlog
from aiohttp import web

from broker.clients.billing_quota import Read, wait_in_words
from broker.config import PausePolicy
from broker.core.org_billing import bills
from broker.core.policy import Action, SubscriptionFacts, permitted
from broker.errors import (
    BillingAuthError,
    BillingBudgetSpent,
    BillingNotFound,
    BillingRateLimited,
    BillingUnavailable,
    ClientError,
)
from broker.manage.appkeys import session_codec_key
from broker.manage.org_lookup import look_up_org
from broker.manage.sessions import Session
from broker.store.engine.tx import Tx
from broker.store.org_index import org_customer_ids
from broker.store.pipeline import ingest_billing_read
from broker.store.queries import (
    SubscriptionView,
    org_claimed_subscription_ids,
    org_subscriptions,
    org_updated_at,
)
from broker.web.appkeys import (
    billing_client_key,
    call_budget_key,
    clock_key,
    org_reads_key,
    settings_key,
    store_key,
    worker_key,
)

log = structlog.get_logger(__name__)

MAX_REFRESHED = 5  # subscriptions re-read from billing per page view


class NotSignedIn(ClientError):
    status = 401
    code = "not_signed_in"


@dataclass
class Viewer:
    session: Session
    subscriptions: list[SubscriptionView]
    current: SubscriptionView | None
    is_owner: bool
    can_manage: bool
    billing_enabled: bool
    facts: SubscriptionFacts | None = None  # the current subscription's, for the action rule
    notices: list[str] = field(default_factory=list)
    # Billing answered the look-up before selling just now (or within the read cache): only
    # then may a new subscription start (fail closed).
    billing_checked: bool = False
    conflicts: list[SubscriptionView] = field(default_factory=list)  # duplicates that bill
    customer_id: str | None = None  # the org's billing customer, reused by a new checkout
    # What a pause means for the app; "none" (not chosen by the vendor) offers no pause.
    pause_policy: PausePolicy = PausePolicy.NONE

    @property
    def actions(self) -> frozenset[Action]:
        """What this viewer may do now (``core.policy``); nothing without billing, no new
        subscription unless billing was asked which ones the org has, and no pause until the
        vendor has chosen what a pause means for the app."""
        if not self.billing_enabled:
            return frozenset()
        if self.current is not None and self.current.missing_in_billing and not self.current.ended:
            return frozenset()  # billing says it does not exist: nothing here can change it
        allowed = permitted(self.facts, can_manage=self.can_manage)
        if not self.billing_checked:
            allowed -= {Action.SUBSCRIBE}
        if self.pause_policy == PausePolicy.NONE:
            allowed -= {Action.PAUSE}
        return allowed


def current_session(request: web.Request) -> Session:
    session = request.app[session_codec_key].read(request)
    if session is None:
        raise NotSignedIn(
            "your session has ended or this page was not opened from the app",
            hint="open the subscription page again from the app's Subscription menu",
        )
    return session


async def load_viewer(request: web.Request, *, refresh: bool = True) -> Viewer:
    session = current_session(request)
    app = request.app
    settings = app[settings_key]
    notices: list[str] = []
    checked = False
    if refresh and billing_client_key in app:
        problems = await refresh_org(app, session)
        notices += problems
        checked = not problems
    subscriptions = await app[store_key].read(
        partial(org_subscriptions, zgid=session.zgid, settings=settings)
    )
    running = [s for s in subscriptions if not s.ended]
    current = _kept(running) or (subscriptions[0] if subscriptions else None)
    conflicts = [s for s in running if s is not current and bills(s.status)]
    is_owner = bool(current and current.owner_zuid == session.zuid)
    if current is not None and not current.ended and current.owner_zuid is None:
        notices.append(
            "The billing owner of this subscription is not known, so it cannot be "
            "changed here. Ask the vendor to set it."
        )
    if checked is False and refresh and billing_client_key in app:
        notices.append(
            "Billing could not be asked which subscriptions your organisation has, so a new "
            "subscription cannot be started right now. Nothing is lost; reload in a minute."
        )
    can_manage = is_owner or (
        settings.landing.members_can_manage
        and current is not None
        and current.owner_zuid is not None
    )
    today = datetime.fromtimestamp(app[clock_key](), UTC).date()
    return Viewer(
        session,
        subscriptions,
        current,
        is_owner,
        can_manage,
        billing_enabled=billing_client_key in app,
        facts=(
            SubscriptionFacts.of(current.status, current.term_ends_at, today)
            if current is not None
            else None
        ),
        notices=notices,
        billing_checked=checked,
        conflicts=conflicts,
        customer_id=next((s.customer_id for s in subscriptions if s.customer_id), None)
        or await app[store_key].read(partial(_first_customer, zgid=session.zgid)),
        pause_policy=settings.plans.pause_policy,
    )


def _kept(running: list[SubscriptionView]) -> SubscriptionView | None:
    """The subscription the page manages: the one the platform has (the conflict rule's
    keeper), else the first running one."""
    held = [s for s in running if s.sync_state in ("ok", "pending")]
    others = [s for s in running if s.sync_state != "conflict"]
    chosen = held or others or running
    return chosen[0] if chosen else None


def _first_customer(db: Tx, zgid: str) -> str | None:
    found = org_customer_ids(db, zgid)
    return found[0] if found else None


async def refresh_org(app: web.Application, session: Session) -> list[str]:
    """Ask billing which subscriptions the org has and re-read them, sparing the vendor's
    quota: a complete read within ``billing.read_cache_seconds`` is reused, concurrent views
    share one read, and a session that has spent its call budget sees what is stored, with a
    notice. The notices are empty only when billing answered."""
    reads = app[org_reads_key]
    zgid = session.zgid
    if reads.fresh(zgid) is None and not reads.in_flight(zgid):
        wait = app[call_budget_key].take(session.csrf, 1)
        if wait is not None:
            log.info("billing.session_over_budget", zgid=zgid, retry_after=round(wait, 1))
            return [
                "You have reloaded this page often, so these details were not read from "
                f"billing again; they are from a moment ago. Reload in {wait_in_words(wait)} for "
                "the latest."
            ]
    return list(await reads.get(zgid, partial(refresh_from_billing, app, session)))


async def _known_ids(app: web.Application, zgid: str) -> list[str]:
    store = app[store_key]
    known = await store.read(partial(org_subscriptions, zgid=zgid, settings=app[settings_key]))
    claimed = await store.read(partial(org_claimed_subscription_ids, zgid=zgid))
    return [s.subscription_id for s in known if not s.ended] + claimed


async def refresh_from_billing(app: web.Application, session: Session) -> Read[tuple[str, ...]]:
    """Look the org up in billing (``org_lookup``), re-read what it has and the broker knows,
    and feed each to the pipeline; the notices to show, and whether billing answered (only
    then is the read reused). At most ``MAX_REFRESHED`` full reads per look-up."""
    settings = app[settings_key]
    store = app[store_key]
    try:
        found = await look_up_org(app, session)
        known = await _known_ids(app, session.zgid)
        ids = list(dict.fromkeys([*found.subscription_ids, *known]))[:MAX_REFRESHED]
        for subscription_id in ids:
            try:
                document = await app[billing_client_key].get_subscription(subscription_id)
            except BillingNotFound:
                continue
            if not document:
                continue
            result = await store.write(
                partial(
                    ingest_billing_read,
                    document=document,
                    source="billing-read",
                    settings=settings,
                    now=app[clock_key](),
                )
            )
            if result.queued:
                app[worker_key].wake()
    except BillingBudgetSpent:
        as_of = await store.read(partial(org_updated_at, zgid=session.zgid))
        return Read((stale_notice(as_of),), complete=False)
    except BillingRateLimited as error:
        wait = error.retry_after if error.retry_after is not None else 60.0
        return Read(
            (
                "Billing is busy right now, so these details may be a little out of date. "
                f"Nothing is lost; try again in {wait_in_words(wait)}.",
            ),
            complete=False,
        )
    except BillingUnavailable:
        return Read(
            (
                "Billing cannot be reached right now, so these details may be a little out "
                "of date. Nothing is lost; try again in a minute.",
            ),
            complete=False,
        )
    except BillingAuthError:
        log.error("billing.credentials_refused")
        return Read(
            (
                "The connection to billing is not set up correctly; the vendor has been "
                "alerted. These details may be out of date.",
            ),
            complete=False,
        )
    return Read((), complete=True)


def stale_notice(as_of: float | None) -> str:
    """The label of a page shown from the store because today's billing budget is kept for
    purchases and changes (``billing.page_reads_stale_percent``)."""
    when = (
        datetime.fromtimestamp(as_of, UTC).strftime("%d %b %Y, %H:%M UTC")
        if as_of is not None
        else "an earlier visit"
    )
    return (
        f"As of {when}: today's billing allowance is kept for purchases and changes, so these "
        "details were not read from billing again and may be out of date. Buying, changing and "
        "cancelling still work."
    )
