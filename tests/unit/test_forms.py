"""The page's form parsers (plan, pause, cancel): a form that checks out becomes a typed choice,
with nothing left for the caller to re-cast; one that does not keeps what was typed and says what
is wrong per field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from broker.core.catalog import Catalog, PlanChoice
from broker.core.forms import (
    MAX_PAUSE_DAYS,
    CancelWhen,
    ChosenCancel,
    ChosenPause,
    ChosenPlan,
    parse_cancel_form,
    parse_pause_form,
    parse_plan_form,
    plan_values,
)
from broker.core.mapping import MONTHLY, YEARLY

CATALOG = Catalog(
    plans=[
        PlanChoice(
            "101",
            "Standard",
            codes={MONTHLY: "app_101", YEARLY: "app_101_Y"},
            prices={MONTHLY: Decimal(10), YEARLY: Decimal(100)},
        ),
        PlanChoice("102", "Monthly only", codes={MONTHLY: "app_102"}, prices={}),
    ],
    storage_codes={MONTHLY: "storage"},
    storage_prices={MONTHLY: Decimal(2)},
)
TODAY = date(2026, 6, 1)


def test_a_plan_form_that_checks_out_is_a_typed_choice_with_billings_codes():
    form = {"planid": " 101 ", "frequency": "monthly", "users": "3", "storage": "2"}
    parsed = parse_plan_form(form, CATALOG)
    assert parsed.ok
    assert parsed.cleaned == ChosenPlan(
        planid="101",
        plan_code="app_101",
        frequency=MONTHLY,
        users=3,
        storage=2,
        storage_code="storage",
    )
    assert parsed.values == {"planid": "101", "frequency": "monthly", "users": "3", "storage": "2"}


def test_a_yearly_choice_without_storage_names_no_storage_code_and_none_is_sold():
    parsed = parse_plan_form({"planid": "101", "frequency": "yearly", "users": "1"}, CATALOG)
    assert parsed.cleaned == ChosenPlan("101", "app_101_Y", YEARLY, 1, 0, None)


def test_the_audit_detail_of_a_choice_keeps_every_field_by_name():
    choice = ChosenPlan("101", "app_101", MONTHLY, 3, 0, "storage")
    assert choice.audit() == {
        "planid": "101",
        "plan_code": "app_101",
        "frequency": MONTHLY,
        "users": 3,
        "storage": 0,
        "storage_code": "storage",
    }


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"planid": "999", "frequency": "monthly", "users": "1"}, "planid"),
        ({"planid": "101", "frequency": "weekly", "users": "1"}, "frequency"),
        ({"planid": "102", "frequency": "yearly", "users": "1"}, "frequency"),
        ({"planid": "101", "frequency": "monthly", "users": "0"}, "users"),
        ({"planid": "101", "frequency": "monthly", "users": "²"}, "users"),
        ({"planid": "101", "frequency": "monthly", "users": "1", "storage": "-1"}, "storage"),
        ({"planid": "101", "frequency": "yearly", "users": "1", "storage": "1"}, "storage"),
    ],
)
def test_a_plan_form_that_does_not_check_out_has_no_choice_and_names_the_field(
    form: dict[str, str], field: str
):
    parsed = parse_plan_form(form, CATALOG)
    assert not parsed.ok
    assert parsed.cleaned is None
    assert list(parsed.errors) == [field]


def test_plan_values_keep_what_was_posted_untouched_for_the_form_shown_again():
    assert plan_values({"planid": " 101", "users": "x", "other": "y"}) == {
        "planid": " 101",
        "frequency": "",
        "users": "x",
        "storage": "",
    }


def test_a_pause_that_checks_out_is_the_resume_date():
    parsed = parse_pause_form({"resume_on": " 2026-06-20 "}, today=TODAY)
    assert parsed.cleaned == ChosenPause(date(2026, 6, 20))
    assert parsed.values == {"resume_on": "2026-06-20"}


@pytest.mark.parametrize(
    "resume_on",
    ["", "20/06/2026", TODAY.isoformat(), date(2027, 6, 3).isoformat()],
)
def test_a_pause_that_does_not_check_out_has_no_date(resume_on: str):
    parsed = parse_pause_form({"resume_on": resume_on}, today=TODAY)
    assert parsed.cleaned is None
    assert list(parsed.errors) == ["resume_on"]


def test_the_longest_pause_allowed_is_still_a_pause():
    last = date.fromordinal(TODAY.toordinal() + MAX_PAUSE_DAYS)
    assert parse_pause_form({"resume_on": last.isoformat()}, today=TODAY).ok


@pytest.mark.parametrize(
    ("form", "default", "when"),
    [
        ({"when": "now", "confirm": "yes"}, CancelWhen.TERM_END, CancelWhen.NOW),
        ({"when": "term_end", "confirm": "yes"}, CancelWhen.NOW, CancelWhen.TERM_END),
        ({"confirm": "yes"}, CancelWhen.TERM_END, CancelWhen.TERM_END),
        ({"confirm": "yes"}, CancelWhen.NOW, CancelWhen.NOW),
    ],
)
def test_a_confirmed_cancel_is_when_it_takes_effect(
    form: dict[str, str], default: CancelWhen, when: CancelWhen
):
    assert parse_cancel_form(form, default=default).cleaned == ChosenCancel(when)


@pytest.mark.parametrize(
    ("form", "fields"),
    [
        ({"when": "now"}, ["confirm"]),
        ({"when": "now", "confirm": "on"}, ["confirm"]),
        ({"when": "tomorrow", "confirm": "yes"}, ["when"]),
        ({"when": " now", "confirm": "yes"}, ["when"]),
        ({"when": "later"}, ["when", "confirm"]),
    ],
)
def test_a_cancel_not_confirmed_or_at_an_unknown_time_has_no_choice(
    form: dict[str, str], fields: list[str]
):
    parsed = parse_cancel_form(form, default=CancelWhen.NOW)
    assert parsed.cleaned is None
    assert list(parsed.errors) == fields
