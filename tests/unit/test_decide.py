"""The pipeline's decision, without a database: what to keep, whom it belongs to, what to send.

Each case builds the facts ``store.pipeline.load_facts`` would load, asks ``core.decide`` and
compares with literal expectations (the end-to-end tests in test_landing, test_robustness and
test_webhook_edge drive the same rules through the store).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.config import LandingVerification
from broker.core.billing_events import WebhookEvent
from broker.core.decide import Decision, Mark, Outcome, claim_for, event_snapshot
from broker.core.identity import Claim, CustomerRecord, UserRecord
from broker.core.landing import LandingParams
from broker.core.subscription_state import SubscriptionState
from broker.errors import Forbidden
from tests.support.basics import subscription_event
from tests.support.decide import (
    CUSTOMER,
    LIVE_5_USERS,
    LIVE_5_USERS_JSON,
    NOW,
    SID,
    ZGID,
    ZUID,
    decided,
    facts,
    snapshot,
    stored,
)

OTHER_ZGID = "70000000002"


def user(verified_by: str | None, zgid: str = ZGID) -> UserRecord:
    return UserRecord(ZUID, zgid, None, None, None, None, None, NOW, NOW, verified_by)


def claim(zgid: str, email: str, verified_by: str | None = "signed") -> Claim:
    return Claim(SID, zgid, ZUID, email, NOW, verified_by)


def test_a_first_live_snapshot_with_both_ids_is_kept_and_queued() -> None:
    incoming = snapshot()
    decision = decided(facts(), incoming)
    assert decision.outcome is Outcome.QUEUED
    assert decision.reason == "status live"
    assert decision.send == LIVE_5_USERS
    assert decision.keep == incoming
    assert decision.mark == Mark(SubscriptionState.APPLIED, "status live")
    assert decision.customer == CustomerRecord(
        CUSTOMER, ZGID, ZUID, "owner@example.com", "Example Org", NOW
    )


def test_an_older_snapshot_is_stale_and_writes_nothing() -> None:
    decision = decided(facts(stored=stored()), snapshot(updated="2026-10-31T23:59:59+0000"))
    assert decision == Decision(
        Outcome.STALE,
        "billing already reported a newer state of subscription 100000000000000001",
        SID,
    )


def test_a_deleted_subscription_stays_deleted() -> None:
    decision = decided(
        facts(stored=stored(status="deleted")), snapshot(updated="2026-11-01T12:00:00+0000")
    )
    assert decision == Decision(
        Outcome.STALE, "subscription 100000000000000001 was deleted in billing", SID
    )


def test_a_subscription_deleted_event_is_kept_as_status_deleted() -> None:
    event = WebhookEvent.model_validate(subscription_event("subscription_deleted", event_id="e9"))
    incoming = event_snapshot(event, now=NOW)
    assert incoming is not None
    assert incoming.subscription.status == "deleted"
    assert incoming.source == "webhook:e9"


def test_an_updated_time_beyond_the_tolerance_is_refused() -> None:
    # The default tolerance is a day: 2026-11-05 is three days after NOW.
    decision = decided(facts(), snapshot(updated="2026-11-05T00:00:00+0000"))
    assert decision == Decision(
        Outcome.REFUSED,
        "billing's updated_time for subscription 100000000000000001 is in the future",
        SID,
    )


def test_the_state_already_queued_is_unchanged() -> None:
    decision = decided(facts(stored=stored(queued_json=LIVE_5_USERS_JSON)), snapshot())
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.reason == "the platform already has or will get this state"
    assert decision.send is None
    assert decision.keep is not None  # the newer snapshot is still kept


def test_a_cancellation_never_sent_is_unchanged() -> None:
    decision = decided(facts(), snapshot(status="cancelled"))
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.reason == "never sent to the platform; nothing to cancel"
    assert decision.mark == Mark(SubscriptionState.APPLIED, "status cancelled")


def test_a_zuid_without_zgid_is_parked() -> None:
    decision = decided(facts(), snapshot(zgid=None))
    assert decision.outcome is Outcome.PARKED
    assert decision.reason == (
        "zgid unknown: set the cf_zuid / cf_zgid custom fields on the billing customer, "
        "or have the user open the Manage Subscription page"
    )
    assert decision.mark == Mark(SubscriptionState.PARKED, decision.reason)
    assert decision.send is None


def test_a_verified_binding_supplies_the_zgid() -> None:
    decision = decided(facts(binding=user("signed")), snapshot(zgid=None))
    assert decision.outcome is Outcome.QUEUED
    assert decision.send == LIVE_5_USERS


def test_an_unverified_binding_supplies_nothing() -> None:
    decision = decided(facts(binding=user(None)), snapshot(zgid=None))
    assert decision.outcome is Outcome.PARKED


def test_a_claim_whose_email_matches_billing_is_believed() -> None:
    decision = decided(
        facts(claims=(claim(ZGID, "owner@example.com"),)), snapshot(zuid=None, zgid=None)
    )
    assert decision.bind == claim(ZGID, "owner@example.com")
    assert decision.outcome is Outcome.QUEUED
    assert decision.send == LIVE_5_USERS


def test_a_claim_with_another_email_is_kept_but_not_believed() -> None:
    decision = decided(
        facts(claims=(claim(OTHER_ZGID, "someone@example.net"),)),
        snapshot(zuid=None, zgid=None),
    )
    assert decision.bind is None
    assert decision.outcome is Outcome.PARKED
    assert decision.reason == (
        "zuid and zgid unknown: set the cf_zuid / cf_zgid custom fields on the billing customer, "
        "or have the user open the Manage Subscription page (a Manage Subscription visit named "
        "this subscription, but its email does not match the billing customer's)"
    )


def test_billing_naming_a_new_org_targets_the_new_org() -> None:
    decision = decided(
        facts(stored=stored(queued_json=LIVE_5_USERS_JSON)),
        snapshot(updated="2026-11-01T12:00:00+0000", zgid=OTHER_ZGID),
    )
    assert decision.outcome is Outcome.QUEUED
    assert decision.send == replace(LIVE_5_USERS, zgid=OTHER_ZGID)


def test_reconciling_a_subscription_billing_never_described_parks_it() -> None:
    assert decided(facts(), None) == Decision(Outcome.PARKED, "no billing state known yet", SID)


def test_a_visitor_cannot_claim_another_orgs_subscription() -> None:
    owned = stored(billing_json=snapshot().subscription.model_dump_json())
    visitor = LandingParams(zuid="60000000009", zgid=OTHER_ZGID, subscription_id=SID)
    with pytest.raises(Forbidden):
        claim_for(facts(stored=owned), visitor, verified_by=LandingVerification.SIGNED, now=NOW)
