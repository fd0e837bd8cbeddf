"""A subscription's status is read once, in the model: a known word is a ``BillingStatus``, a word
Zoho may add is kept (lower-cased) as an ``UnknownStatus`` and refuses nothing; the stored
snapshot keeps billing's word as sent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.config import PlansSettings
from broker.core.billing_events import BillingSubscription, ListedSubscription
from broker.core.billing_status import BillingStatus, UnknownStatus, parse_status
from broker.core.mapping import classify_status


@pytest.mark.parametrize(
    ("word", "status"),
    [("live", BillingStatus.LIVE), ("LIVE", BillingStatus.LIVE), ("Paused", BillingStatus.PAUSED)],
)
def test_a_known_word_in_any_case_is_its_status(word: str, status: BillingStatus) -> None:
    assert parse_status(word) is status


def test_an_unknown_word_is_kept_lower_cased_and_equals_no_known_status() -> None:
    status = parse_status("Suspended")

    assert isinstance(status, UnknownStatus)
    assert status == "suspended"
    assert status not in set(BillingStatus)


@pytest.mark.parametrize("value", ["", 5, None, "x" * 51])
def test_what_is_no_status_word_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="status word"):
        parse_status(value)


def test_the_model_parses_the_status_and_keeps_billings_word_for_the_snapshot() -> None:
    known = BillingSubscription.model_validate({"subscription_id": "1", "status": "LIVE"})
    unknown = BillingSubscription.model_validate({"subscription_id": "1", "status": "On_Hold"})
    deleted = known.model_copy(update={"status": BillingStatus.DELETED})

    assert known.status is BillingStatus.LIVE
    assert '"status":"LIVE"' in known.model_dump_json()
    assert '"status":"deleted"' in deleted.model_dump_json()
    assert isinstance(unknown.status, UnknownStatus)
    assert unknown.status == "on_hold"
    assert '"status":"On_Hold"' in unknown.model_dump_json()
    assert classify_status(unknown.status, PlansSettings()) is None
    listed = ListedSubscription.model_validate({"subscription_id": "1", "status": "dunning"})
    assert listed.status is BillingStatus.DUNNING


def test_a_subscription_without_a_status_is_refused() -> None:
    with pytest.raises(ValidationError, match="status"):
        BillingSubscription.model_validate({"subscription_id": "1"})
