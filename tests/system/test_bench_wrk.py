"""The benchmark's wrk pieces that need no load run: the Lua script's bodies, wrk's summary
parsed from recorded real output, and how replicas' runs combine. The load run is never here."""

from __future__ import annotations

import json

import pytest

from bench import servers as bench_servers
from bench.wrk import (
    BAD_LINE,
    MARK,
    WrkResult,
    body_template,
    combine,
    lua_script,
    number_text,
    parse_wrk,
    render_body,
    split_connections,
)
from tests.conftest import BrokerFactory, post_event

# Recorded from `wrk -t1 -c50 -d3s --timeout 10s --latency -s <lua_script>` (wrk 4.1.0, Debian)
# against the bench's bare aiohttp handler.
CLEAN = """Running 3s test @ http://127.0.0.1:45313/webhooks/billing
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.63ms  423.00us   8.98ms   84.30%
    Req/Sec    30.53k     4.16k   35.03k    60.00%
  Latency Distribution
     50%    1.45ms
     75%    1.85ms
     90%    2.11ms
     99%    3.14ms
  91133 requests in 3.00s, 15.73MB read
Requests/sec:  30361.04
Transfer/sec:      5.24MB
bench non-200 responses: 0
"""

# Recorded the same way with the script's method set to GET: the handler answers 405.
REFUSED = """Running 1s test @ http://127.0.0.1:46569/webhooks/billing
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.98ms    1.99ms  19.81ms   96.24%
    Req/Sec    15.82k     1.93k   17.91k    63.64%
  Latency Distribution
     50%  541.00us
     75%  612.00us
     90%    1.14ms
     99%   13.23ms
  17303 requests in 1.10s, 3.38MB read
  Non-2xx or 3xx responses: 17303
Requests/sec:  15720.64
Transfer/sec:      3.07MB
bench non-200 responses: 17303
"""


def test_parse_clean_run_reads_rate_and_percentiles() -> None:
    result = parse_wrk(CLEAN)
    assert (result.requests, result.seconds, result.req_per_s) == (91133, 3.0, 30361.04)
    assert (result.p50_ms, result.p75_ms, result.p90_ms, result.p99_ms) == (1.45, 1.85, 2.11, 3.14)
    assert result.max_ms == 8.98
    assert result.failures == 0


def test_parse_refused_run_counts_every_non_2xx_and_microseconds() -> None:
    result = parse_wrk(REFUSED)
    assert result.p50_ms == pytest.approx(0.541)
    assert result.p99_ms == 13.23
    assert result.seconds == pytest.approx(1.1)
    assert (result.non_2xx, result.non_200, result.failures) == (17303, 17303, 17303)


def test_parse_socket_errors_are_failures() -> None:
    text = CLEAN.replace(
        "Requests/sec:", "  Socket errors: connect 0, read 2, write 0, timeout 3\nRequests/sec:"
    )
    result = parse_wrk(text)
    assert result.socket_errors == {"connect": 0, "read": 2, "write": 0, "timeout": 3}
    assert result.failures == 5


def test_parse_refuses_output_without_a_summary() -> None:
    with pytest.raises(ValueError, match="requests in"):
        parse_wrk("unable to connect to 127.0.0.1:19299 Connection refused\n")


def test_replicas_add_rates_and_keep_the_worst_latency() -> None:
    one, two = parse_wrk(CLEAN), parse_wrk(REFUSED)
    both = combine([one, two])
    assert both.requests == 91133 + 17303
    assert both.req_per_s == pytest.approx(30361.04 + 15720.64)
    assert both.p99_ms == 13.23
    assert both.p50_ms == 1.45
    assert both.failures == 17303


def test_connections_split_evenly_between_replicas() -> None:
    assert split_connections(50, 2) == [25, 25]
    assert split_connections(10, 3) == [4, 3, 3]
    with pytest.raises(ValueError, match="cannot drive"):
        split_connections(1, 2)


def test_template_bodies_are_distinct_zoho_sized_events() -> None:
    template = body_template("run1")
    first, second = (json.loads(render_body(template, n)) for n in (1, 2))
    assert MARK not in render_body(template, 1)
    assert 1200 <= len(render_body(template, 1)) <= 1600  # about 1.4 KB, as Zoho sends
    assert first["event_id"] != second["event_id"]
    subscription = first["data"]["subscription"]
    assert subscription["subscription_id"] == "10000000" + number_text(1)
    assert len(subscription["subscription_id"]) == 18  # Zoho's id length


def test_lua_script_joins_the_same_pieces_with_the_same_number_format() -> None:
    script = lua_script("run1", base=30_000_000)
    pieces = body_template("run1").split(MARK)
    for piece in pieces:
        assert f"[==[{piece}]==]" in script
    assert 'string.format("%010d", counter)' in script
    assert number_text(7) == "%010d" % 7  # noqa: UP031 - the Lua format, checked in Python
    assert f'wrk.headers["zapikey"] = "{bench_servers.ZAPIKEY}"' in script
    assert "counter = 30000000 + tid * 10000000" in script
    assert BAD_LINE in script


async def test_every_bench_body_is_accepted_by_the_webhook_edge(
    make_broker: BrokerFactory,
) -> None:
    client = await make_broker(
        platform={"app_domain": bench_servers.APP_DOMAIN, "zapikey": bench_servers.ZAPIKEY},
        plans={"storage_addon_monthly": bench_servers.STORAGE_MONTHLY},
    )
    template = body_template("edge")
    for n in (10_000_001, 10_000_002):
        response = await post_event(
            client, render_body(template, n).encode(), key=bench_servers.ZAPIKEY
        )
        assert response.status == 200
        assert (await response.json())["status"] == "accepted"


def test_wrk_result_summary_names_failures() -> None:
    result = WrkResult(10, 1.0, 10.0, 1, 1, 1, 1, 1, non_2xx=0, non_200=2, socket_errors={})
    assert result.summary()["failures"] == 2
