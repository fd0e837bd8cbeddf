"""Looking before selling: which subscriptions org ``zgid`` has in billing, not only those the
broker heard of. The page asks before it offers Subscribe and again when a subscribe form is
posted, so an org that already pays (its webhooks dropped) is never sold a second subscription.

Sources, all documented calls (docs/contracts.md §4, "Which subscriptions an org has"): the
customer index (customers by ``cf_zgid``, kept from webhooks, billing reads and, for an org it
does not know, the customer sweep ``delivery.customer_index``), then ``GET
/subscriptions?customer_id=`` for each of the org's customers. What is found is read in full and
fed to the pipeline by the caller, like a webhook. An email that matches a customer of no known
org never blocks or reuses anything: one person may own several orgs. It is an ``/ops`` notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import structlog
from aiohttp import web

from broker.delivery.org_billing_read import read_org_in_billing
from broker.manage.sessions import Session
from broker.store.audit import record_notice_once
from broker.store.org_index import email_only_customer_ids
from broker.web.appkeys import billing_client_key, clock_key, customer_sweep_key, store_key

log = structlog.get_logger(__name__)

EMAIL_ONLY_NOTICE = "notice.email_only_match"


@dataclass(frozen=True)
class Found:
    """What billing holds for the org: subscription ids (those that bill first), and the
    billing customer a new checkout must reuse."""

    subscription_ids: tuple[str, ...]
    customer_id: str | None


async def look_up_org(app: web.Application, session: Session) -> Found:
    """Ask billing which subscriptions org ``session.zgid`` has. Billing errors propagate: the
    caller fails closed (no checkout starts on a guess)."""
    org = await read_org_in_billing(
        app[store_key], app[billing_client_key], app[customer_sweep_key], session.zgid
    )
    if not org.customer_ids and session.email:
        await _note_email_only_match(app, session)
    ids = tuple(s.subscription_id for s in org.subscriptions)
    return Found(ids, org.customer_ids[0] if org.customer_ids else None)


async def _note_email_only_match(app: web.Application, session: Session) -> None:
    """A billing customer with the visitor's email but no org of theirs: an operator notice,
    once per org and customer (the audit log is the /ops record)."""
    store = app[store_key]
    email = session.email or ""
    matches = await store.read(partial(email_only_customer_ids, email=email, zgid=session.zgid))
    if not matches:
        return
    new = await store.write(
        partial(
            record_notice_once,
            at=app[clock_key](),
            zuid=session.zuid,
            zgid=session.zgid,
            action=EMAIL_ONLY_NOTICE,
            detail={
                "customer_ids": matches,
                "why": "a billing customer has this visitor's email but names no org of theirs; "
                "neither blocked nor reused. Set cf_zgid on the customer if it is this org's.",
            },
        )
    )
    if new:
        log.warning(
            "billing.email_only_match", zgid=session.zgid, zuid=session.zuid, customers=matches
        )
