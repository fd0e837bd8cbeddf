"""The retry schedule and the platform client's pure verdicts, tested without I/O.

``RetryPolicy`` decides when a failed delivery is tried again and when the broker stops trying;
``classify_response`` and ``parse_retry_after`` turn a platform answer into the verdict the
delivery worker acts on (docs/contracts.md section 1).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from broker.clients.http import parse_retry_after
from broker.config import DeliverySettings
from broker.core.platform_answers import classify_response
from broker.delivery.retry import RetryPolicy, retry_delay

DAY = 24 * 3600.0


def policy(**overrides: float) -> RetryPolicy:
    values = {
        "initial_backoff_seconds": 2.0,
        "max_backoff_seconds": 60.0,
        "jitter_seconds": 0.0,
        "max_retry_after_seconds": 600.0,
    }
    values.update(overrides)
    return RetryPolicy(DeliverySettings(**values))


# --- RetryPolicy.delay ---------------------------------------------------------------------------


def test_delays_double_from_the_initial_backoff():
    retry = policy()
    assert [retry.delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_delays_are_capped_at_max_backoff():
    retry = policy()
    assert [retry.delay(n) for n in (6, 7, 20)] == [60.0, 60.0, 60.0]


def test_a_huge_attempt_number_waits_max_backoff_instead_of_overflowing():
    assert policy().delay(5000) == 60.0


def test_attempt_zero_or_below_waits_like_the_first_attempt():
    retry = policy()
    assert retry.delay(0) == retry.delay(-3) == retry.delay(1) == 2.0


def test_jitter_only_adds_up_to_jitter_seconds_and_never_passes_the_cap():
    retry = policy(jitter_seconds=0.5, max_backoff_seconds=8.2)
    for attempt, base in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        delays = [retry.delay(attempt) for _ in range(200)]
        assert all(base <= d <= min(base + 0.5, 8.2) for d in delays), (attempt, delays[:5])
    assert len({retry.delay(1) for _ in range(50)}) > 1, "jitter should vary the delay"
    assert all(retry.delay(10) <= 8.2 for _ in range(200))


def test_retry_after_longer_than_the_backoff_lengthens_the_delay():
    assert policy().delay(1, retry_after=30.0) == 30.0


def test_retry_after_shorter_than_the_backoff_never_shortens_it():
    retry = policy()
    assert retry.delay(4, retry_after=1.0) == 16.0
    assert retry.delay(1, retry_after=0.0) == 2.0


def test_retry_after_is_capped_at_max_retry_after_seconds():
    retry = policy(max_retry_after_seconds=600.0)
    assert retry.delay(1, retry_after=86_400.0) == 600.0
    assert retry.delay(1, retry_after=float("inf")) == 600.0


def test_retry_after_cap_does_not_shorten_a_longer_backoff():
    retry = policy(max_retry_after_seconds=5.0)
    assert retry.delay(5, retry_after=3600.0) == 32.0


# --- retry_delay: the schedule as literal values ------------------------------------------------


def test_default_schedule_without_jitter_doubles_from_2_s_to_the_hour_cap():
    """Defaults: 2 s initial backoff, doubling, capped at 3,600 s (config.DeliverySettings)."""
    defaults = DeliverySettings()
    assert [retry_delay(defaults, n) for n in range(1, 15)] == [
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        64.0,
        128.0,
        256.0,
        512.0,
        1024.0,
        2048.0,
        3600.0,  # 4096 capped
        3600.0,
        3600.0,
    ]


def test_drawn_jitter_is_added_to_the_backoff_and_the_cap_still_holds():
    settings = DeliverySettings(initial_backoff_seconds=2.0, max_backoff_seconds=10.0)
    assert retry_delay(settings, 1, jitter=0.25) == 2.25
    assert retry_delay(settings, 3, jitter=0.75) == 8.75
    assert retry_delay(settings, 3, jitter=2.5) == 10.0  # 10.5 capped
    assert retry_delay(settings, 4, jitter=0.5) == 10.0  # 16.5 capped


def test_retry_after_is_honoured_and_capped_in_the_pure_schedule():
    settings = DeliverySettings(
        initial_backoff_seconds=2.0, max_backoff_seconds=60.0, max_retry_after_seconds=120.0
    )
    assert retry_delay(settings, 1, jitter=0.5, retry_after=30.0) == 30.0
    assert retry_delay(settings, 3, jitter=0.5, retry_after=3.0) == 8.5
    assert retry_delay(settings, 1, retry_after=7200.0) == 120.0


def test_an_attempt_number_far_beyond_float_range_waits_the_cap():
    assert retry_delay(DeliverySettings(max_backoff_seconds=60.0), 100_000) == 60.0


def test_policy_draws_jitter_from_its_seeded_generator():
    """random.Random(42).random() is 0.6394267984578837 in every CPython since 3.2."""
    settings = DeliverySettings(initial_backoff_seconds=2.0, jitter_seconds=1.0)
    retry = RetryPolicy(settings, rng=random.Random(42))
    assert retry.delay(1) == 2.6394267984578837


def test_default_schedule_gives_up_after_attempt_82_about_71_hours_in():
    """Worked by hand, defaults and no jitter: attempts 1-11 wait 2+4+...+2048 = 4,094 s, so
    attempt 12 starts at 4,094 s and each later one 3,600 s after it; attempt 82 starts at
    4,094 + 70 x 3,600 = 256,094 s, and its retry would fall at 259,694 s, past the 259,200 s
    (3-day) horizon."""
    defaults = DeliverySettings(jitter_seconds=0.0)
    retry = RetryPolicy(defaults)
    started, attempt = 0.0, 1
    while not retry.gives_up(0.0, started + retry.delay(attempt)):
        started, attempt = started + retry.delay(attempt), attempt + 1
    assert (attempt, started) == (82, 256_094.0)


# --- RetryPolicy.gives_up ------------------------------------------------------------------------


def test_gives_up_only_once_the_next_try_falls_beyond_the_horizon():
    retry = RetryPolicy(DeliverySettings(retry_horizon_seconds=100.0))
    start = 1_000_000.0
    assert not retry.gives_up(start, start + 50.0)
    assert not retry.gives_up(start, start + 100.0)
    assert retry.gives_up(start, start + 100.001)


def test_default_retry_horizon_is_at_least_three_days():
    defaults = DeliverySettings()
    assert defaults.retry_horizon_seconds >= 3 * DAY
    retry = RetryPolicy(defaults)
    assert not retry.gives_up(0.0, 3 * DAY - 1)


def test_default_schedule_keeps_retrying_for_three_days_then_stops():
    """Walk the default schedule attempt by attempt: it spans the horizon, then gives up."""
    defaults = DeliverySettings()
    retry = RetryPolicy(defaults)
    now, attempt = 0.0, 1
    while True:
        retry_at = now + retry.delay(attempt)
        if retry.gives_up(0.0, retry_at):
            break
        now, attempt = retry_at, attempt + 1
        assert attempt < 10_000, "the schedule never reaches the horizon"
    assert now >= 3 * DAY - defaults.max_backoff_seconds - defaults.jitter_seconds
    assert attempt > 10  # many tries, not a handful of huge gaps


# --- classify_response ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"Message": "Success"}),
        (201, {"Message": "Success"}),
        (200, {"message": "success"}),
        (204, ""),
        (200, "OK"),  # not JSON: 2xx with no readable failure marker
        (200, "<html>done</html>"),
        (200, [{"Message": "Failure"}]),  # a list is not the documented answer object
        (200, {"Message": "Subscription added"}),
    ],
)
def test_2xx_without_a_failure_marker_is_success(status, body):
    text = body if isinstance(body, str) else json.dumps(body)
    assert classify_response(status, text) == "success"


@pytest.mark.parametrize(
    "body",
    [
        {"Message": "Failure"},
        {"message": "failure"},
        {"MESSAGE": "FAILURE"},
        {"Message": " Failure "},
        {"status": "error", "code": "INVALID_DATA", "message": "bad field"},
        {"Status": "Error"},
        {"STATUS": "failed"},
    ],
)
def test_2xx_with_a_failure_marker_in_any_case_is_rejected(body):
    assert classify_response(200, json.dumps(body)) == "reject"


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_throttling_timeouts_and_server_errors_are_retried(status):
    assert classify_response(status, json.dumps({"code": "X", "status": "error"})) == "retry"
    assert classify_response(status, "") == "retry"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422, 301])
def test_other_non_2xx_statuses_are_rejected(status):
    assert classify_response(status, json.dumps({"code": "INVALID_DATA"})) == "reject"
    assert classify_response(status, "not json") == "reject"


# --- parse_retry_after ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"), [("120", 120.0), ("0", 0.0), (" 2 ", 2.0), ("0.3", 0.3), ("-5", 0.0)]
)
def test_retry_after_in_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_as_a_future_http_date_counts_the_seconds_until_then():
    two_minutes_before = datetime(2026, 10, 21, 7, 26, tzinfo=UTC).timestamp()
    seconds = parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", clock=lambda: two_minutes_before)
    assert seconds == 120.0


def test_retry_after_as_a_past_http_date_means_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("header", [None, "", "   ", "soon", "tomorrow at noon", "12abc"])
def test_retry_after_that_cannot_be_read_is_none(header):
    assert parse_retry_after(header) is None
