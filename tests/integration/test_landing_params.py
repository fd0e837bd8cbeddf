"""Reading the landing parameters (docs/contracts.md §2) never fails with a 500, whatever the
browser sends: hostile custom_fields and non-ASCII digits get a 400 that names the problem."""

from __future__ import annotations

import json

import pytest

from broker.core.billing_events import BillingSubscription
from broker.core.identity import identity_from_billing
from broker.core.landing import parse_landing
from broker.errors import InvalidLanding
from broker.web.appkeys import clock_key
from tests.conftest import db_rows
from tests.support.basics import link_signature

ZUID, ZGID = "60000000001", "70000000001"

HOSTILE_CUSTOM_FIELDS = {
    "nested_50k_deep": "[" * 50_000 + "]" * 50_000,
    "nested_object_50k_deep": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "number_5000_digits": '{"zuid": ' + "9" * 5000 + ', "zgid": 1}',
    "float_5000_digits": '{"zuid": 1.' + "9" * 5000 + "}",
    "huge_exponent": '{"zuid": 1e999999}',
}


@pytest.mark.parametrize("case", list(HOSTILE_CUSTOM_FIELDS))
def test_hostile_custom_fields_answer_invalid_landing(case: str):
    with pytest.raises(InvalidLanding) as refused:
        parse_landing([{"custom_fields": HOSTILE_CUSTOM_FIELDS[case]}])
    assert refused.value.status == 400
    assert "custom_fields" in refused.value.message, refused.value.message


# Devanagari, fullwidth and superscript digits: str.isdigit() says yes to each.
@pytest.mark.parametrize("digits", ["१२३४५", "\uff11\uff12\uff13", "\u00b2\u00b3"])
@pytest.mark.parametrize("name", ["zuid", "zgid"])
def test_ids_are_ascii_digits_only(name: str, digits: str):
    values = {"zuid": ZUID, "zgid": ZGID, name: digits}
    with pytest.raises(InvalidLanding) as refused:
        parse_landing([values])
    assert name in " ".join(refused.value.details["problems"])


def test_json_custom_fields_with_non_ascii_digits_are_refused():
    with pytest.raises(InvalidLanding):
        parse_landing([{"custom_fields": json.dumps({"zuid": "१२", "zgid": ZGID})}])


def test_json_custom_fields_numbers_still_read():
    params = parse_landing([{"custom_fields": json.dumps({"zuid": int(ZUID), "zgid": int(ZGID)})}])
    assert (params.zuid, params.zgid) == (ZUID, ZGID)


def test_billing_custom_field_with_non_ascii_digits_is_no_id():
    subscription = BillingSubscription.model_validate(
        {
            "subscription_id": "1",
            "status": "live",
            "customer": {
                "customer_id": "9",
                "custom_fields": [
                    {"label": "zuid", "api_name": "cf_zuid", "value": "१२३"},
                    {"label": "zgid", "api_name": "cf_zgid", "value": ZGID},
                ],
            },
        }
    )
    identity = identity_from_billing(subscription)
    assert (identity.zuid, identity.zgid) == (None, ZGID)


@pytest.mark.parametrize("mode", ["signed", "none"])
@pytest.mark.parametrize("case", ["nested_50k_deep", "number_5000_digits"])
async def test_hostile_custom_fields_on_the_page_answer_400_not_500(make_broker, mode, case):
    broker = await make_broker(landing={"verify": mode})
    pairs = [("zuid", ZUID), ("zgid", ZGID), ("custom_fields", HOSTILE_CUSTOM_FIELDS[case])]
    if mode == "signed":
        pairs += link_signature(pairs, now=broker.app[clock_key]())
    response = await broker.post("/manage", data=dict(pairs), allow_redirects=False)
    text = await response.text()
    assert response.status == 400, text
    assert "custom_fields" in text
    assert await db_rows(broker, "SELECT * FROM users") == []
