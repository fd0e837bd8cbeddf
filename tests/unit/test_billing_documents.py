"""Reading Zoho Billing's answers as its OpenAPI documents describe them (pure, no I/O):
the hosted page (specs/hosted-pages.yml), events-list items (specs/events.yml) and the end
of a list (``page_context`` documented for invoices only, specs/invoices.yml)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from broker.cli.reconcile import table
from broker.clients.billing_pages import has_more
from broker.core.hosted_pages import CheckoutStatus, read_hosted_page
from broker.core.reconcile import EventOrder, ListedEvent, listed_item
from broker.delivery.reconcile import RunOutcome, RunReport

SUBSCRIPTION = {"subscription_id": "9030000079200", "status": "live"}


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("fresh", CheckoutStatus.OPEN),
        ("read", CheckoutStatus.OPEN),
        ("success", CheckoutStatus.PAID),
        ("failed", CheckoutStatus.FAILED),
        ("cancelled", CheckoutStatus.CANCELLED),
        ("force_cancelled", CheckoutStatus.CANCELLED),
        ("SUCCESS", CheckoutStatus.PAID),
        ("paid", CheckoutStatus.UNKNOWN),
        ("", CheckoutStatus.UNKNOWN),
    ],
)
def test_each_documented_hosted_page_status_word_means_one_checkout_status(
    word: str, status: CheckoutStatus
) -> None:
    assert read_hosted_page({"code": 0, "status": word}).status is status


def test_hosted_page_is_read_flat_as_documented() -> None:
    # The documented example: status success, data.subscription at the top level.
    body = {
        "code": 0,
        "message": "success",
        "hostedpage_id": "8c589071e7e26a8d28e8af081c373fb00bd6dc5366fd129eefd5c61c569da526",
        "status": "success",
        "url": "https://billing.zoho.com/hostedpage/2-8c58/checkout",
        "action": "new_subscription",
        "data": {"subscription": SUBSCRIPTION},
    }

    page = read_hosted_page(body)

    assert (page.status, page.subscription) == (CheckoutStatus.PAID, SUBSCRIPTION)
    assert page.url == "https://billing.zoho.com/hostedpage/2-8c58/checkout"


def test_hosted_page_inside_a_wrapper_is_read_too() -> None:
    body = {"code": 0, "hostedpage": {"status": "success", "data": {"subscription": SUBSCRIPTION}}}

    page = read_hosted_page(body)

    assert (page.status, page.subscription) == (CheckoutStatus.PAID, SUBSCRIPTION)


@pytest.mark.parametrize(
    "data", [{}, None, "x", {"subscription": {}}, {"subscription": "9030000079200"}, []]
)
def test_fresh_or_malformed_hosted_page_data_carries_no_subscription(data: Any) -> None:
    assert read_hosted_page({"status": "fresh", "data": data}).subscription is None


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", 7, None, "//evil"])
def test_only_a_web_address_becomes_a_continue_link(url: Any) -> None:
    assert read_hosted_page({"status": "fresh", "url": url}).url is None


def test_a_documented_events_list_item_is_read_with_its_time_and_offset() -> None:
    item = {
        "event_id": "90300000005337",
        "event_type": "subscription_activation",
        "event_time": "2016-06-05T18:28:20-0700",
    }

    listed = listed_item(item)

    moment = datetime(2016, 6, 5, 18, 28, 20, tzinfo=timezone(timedelta(hours=-7)))
    assert listed == ListedEvent("90300000005337", "subscription_activation", moment)


def test_an_events_list_item_with_a_bare_day_is_read_as_that_day() -> None:
    listed = listed_item({"event_id": 5, "event_type": "x", "event_time": "2026-06-01"})

    assert listed is not None
    assert (listed.event_id, listed.at) == ("5", datetime(2026, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "item",
    [
        {"event_type": "subscription_created", "event_time": "2026-06-01"},
        {"event_id": "../plans", "event_type": "subscription_created", "event_time": "2026-06-01"},
        {"event_id": True, "event_type": "subscription_created", "event_time": "2026-06-01"},
        {"event_id": "1", "event_type": "", "event_time": "2026-06-01"},
        {"event_id": "1", "event_type": "subscription_created", "event_time": "June"},
        {"event_id": "1", "event_type": "subscription_created"},
    ],
)
def test_an_events_list_item_without_a_usable_id_type_or_time_is_not_read(
    item: dict[str, Any],
) -> None:
    assert listed_item(item) is None


def test_the_events_list_order_is_learnt_from_event_time() -> None:
    day = datetime(2026, 6, 1, tzinfo=UTC)
    newest, oldest, flat = EventOrder(), EventOrder(), EventOrder()
    for at in (day, day, day - timedelta(days=1), day - timedelta(days=2)):
        newest.see(at)
    for at in (day, day + timedelta(days=1)):
        oldest.see(at)
    for at in (day, day):
        flat.see(at)

    assert (newest.newest_first, oldest.newest_first, flat.newest_first) == (True, False, None)
    assert not newest.contradicted
    newest.see(day + timedelta(days=5))
    assert newest.contradicted


@pytest.mark.parametrize(
    ("body", "count", "more"),
    [
        ({"page_context": {"has_more_page": True}}, 3, True),  # billing says so: believed
        ({"page_context": {"has_more_page": False}}, 200, False),
        ({}, 200, True),  # no page_context: a full page may have more
        ({}, 199, False),
        ({"page_context": {"has_more_page": "yes"}}, 199, False),  # not a boolean: count
        ({"page_context": "x"}, 200, True),
    ],
)
def test_a_list_ends_when_page_context_says_so_or_else_on_a_short_page(
    body: dict[str, Any], count: int, more: bool
) -> None:
    assert has_more(body, count, 200) is more


def test_the_reconcile_table_says_when_a_run_stopped_reading_at_a_bound() -> None:
    report = RunReport(RunOutcome.DONE, run_id=3, since="2026-06-01", stopped_early="bound hit")

    assert "not everything was read: bound hit" in table(report)
