"""Which platform answers to a repeated Cancel mean "already gone" (docs/contracts.md §1 [unsure]).

A Cancel cut off by a crash is sent again; if the first one landed, the platform refuses the
second. Only a refusal that says the subscription is not there may count as done: a refusal about
us (401, 403) or about the request (400) must stay a dead letter, or a revoked zapikey would
silently mark every cancellation done while the org keeps the app.
"""

from __future__ import annotations

import json

import pytest

from broker.config import PlatformSettings
from broker.core.platform_answers import means_already_gone
from tests.support.basics import APP_DOMAIN, ZAPIKEY

SETTINGS = PlatformSettings(app_domain=APP_DOMAIN, zapikey=ZAPIKEY)


def zoho_error(code: str, message: str) -> str:
    """The {code, details, message, status} shape other zohoplatform APIs answer errors with."""
    return json.dumps({"code": code, "details": {}, "message": message, "status": "error"})


def gone(status: int | None, text: str | None, settings: PlatformSettings = SETTINGS) -> bool:
    return means_already_gone(status, text, settings)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (404, zoho_error("INVALID_URL", "no such resource")),  # not found, whatever it says
        (404, ""),
        (404, "<html>Not Found</html>"),
        (410, ""),
        (200, json.dumps({"Message": "Failure", "details": "Subscription already cancelled"})),
        (200, json.dumps({"Message": "Failure", "reason": "subscription does not exist"})),
        (400, zoho_error("SUBSCRIPTION_NOT_FOUND", "invalid subscription_id")),
        (400, zoho_error("INVALID_DATA", "No active subscription")),
        (422, zoho_error("INVALID_DATA", " ALREADY CANCELED. ")),
        (400, zoho_error("INVALID_DATA", "Already-Cancelled")),
    ],
)
def test_an_answer_saying_the_subscription_is_gone_counts_as_done(status, text):
    assert gone(status, text)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (200, json.dumps({"Message": "Failure"})),  # says it failed, not why
        (400, zoho_error("INVALID_DATA", "zuid is invalid")),
        (400, zoho_error("INVALID_DATA", "user not found")),  # not the subscription
        (401, zoho_error("INVALID_TOKEN", "subscription not found")),  # about us, whatever it says
        (403, zoho_error("NO_PERMISSION", "no permission to cancel")),
        (403, zoho_error("NO_PERMISSION", "subscription already cancelled")),
        (200, json.dumps({"Message": "Success"})),
        (503, zoho_error("SERVICE_UNAVAILABLE", "subscription not found")),
        (None, None),  # never answered
        (200, "subscription already cancelled"),  # not JSON: nothing we can read as a field
        (200, json.dumps(["subscription already cancelled"])),
        # A marker inside a longer message: the message is about something else.
        (400, zoho_error("INVALID_DATA", "Invalid zapikey: no subscription for this key")),
        (400, zoho_error("INVALID_DATA", "No active subscription for this org's key")),
        (400, zoho_error("INVALID_DATA", "plan not found; subscription already cancelled?")),
    ],
)
def test_any_other_refusal_is_not_taken_as_gone(status, text):
    assert not gone(status, text)


def test_the_markers_are_a_setting_for_platforms_that_word_it_otherwise():
    text = zoho_error("INVALID_DATA", "Abonnement bereits gekündigt")
    assert not gone(400, text)
    settings = SETTINGS.model_copy(update={"cancel_gone_markers": ["Abonnement bereits gekündigt"]})
    assert gone(400, text, settings)
    assert not gone(403, text, settings), "401 and 403 never count, whatever the markers"


def test_a_zapikey_refusal_naming_no_subscription_is_not_taken_as_gone():
    text = zoho_error("INVALID_DATA", "Invalid zapikey: no subscription for this key")
    assert not gone(400, text)
    assert not gone(200, json.dumps({"Message": "Failure", "details": text}))


def test_the_statuses_are_a_setting_too():
    settings = SETTINGS.model_copy(update={"cancel_gone_statuses": [410]})
    assert not gone(404, "", settings)
    assert gone(410, "", settings)
