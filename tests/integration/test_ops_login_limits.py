"""Sign-in to the console under attack: guesses are limited per client address and for
everyone, refused before any scrypt runs, with a 429 that says when to try again; the hashing
runs on threads of its own with a bounded queue, so a flood of sign-ins never reaches /readyz."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from structlog.testing import capture_logs

from broker.core.login_throttle import LoginRefusal, LoginThrottle, ThrottleLimits
from broker.ops.access import COOKIE_NAME
from broker.ops.appkeys import ops_hashing_key
from tests.conftest import BrokerFactory
from tests.support.basics import DECEMBER_FIRST_NOON, ManualClock
from tests.support.ops import OPS, PASSWORD

DEADLINE = 5.0  # seconds a 429 "at once" may take on a loaded machine; it never waits on a job


def limits(**overrides: Any) -> ThrottleLimits:
    values: dict[str, Any] = {
        "per_address_burst": 5,
        "per_address_per_minute": 5.0,
        "global_burst": 30,
        "global_per_minute": 30.0,
        "max_addresses": 100,
    }
    return ThrottleLimits(**{**values, **overrides})


async def login(client: Any, password: str, **headers: str) -> Any:
    return await client.post(
        "/ops/login", data={"password": password}, headers=headers, allow_redirects=False
    )


async def test_guesses_from_one_address_are_cut_off_and_the_right_password_waits_too(
    make_broker: BrokerFactory,
):
    clock = ManualClock(DECEMBER_FIRST_NOON)
    client = await make_broker(ops=OPS, clock=clock)
    with capture_logs() as logs:
        statuses = [(await login(client, f"guess-{n}")).status for n in range(60)]
    assert not any(f"guess-{n}" in str(logs) for n in range(60))
    # The defaults: 5 at once, then 5 a minute (one every 12 seconds).
    assert statuses == [401] * 5 + [429] * 55
    refused = await login(client, PASSWORD)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "12"
    text = await refused.text()
    assert "too many sign-in attempts from your address" in text
    assert "wait 12 seconds" in text
    assert COOKIE_NAME not in refused.cookies
    limited = [e for e in logs if e.get("reason") == "address_limit"]
    assert len(limited) == 55
    assert limited[0]["event"] == "ops.login_refused"
    assert limited[0]["address"] == "127.0.0.1"
    assert limited[0]["log_level"] == "warning"
    metrics = await (await client.get("/metrics")).text()
    # The 55 guesses and the right password after them.
    assert 'broker_ops_login_refused_total{reason="address_limit"} 56.0' in metrics
    assert 'broker_ops_login_refused_total{reason="wrong_password"} 5.0' in metrics

    clock.advance(12)
    assert (await login(client, PASSWORD)).status == 303


async def test_the_right_password_starts_its_address_afresh(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS, clock=ManualClock(DECEMBER_FIRST_NOON))
    for _ in range(4):
        assert (await login(client, "guess")).status == 401
    assert (await login(client, PASSWORD)).status == 303
    for _ in range(5):
        assert (await login(client, "typo")).status == 401


async def test_a_forwarded_for_header_is_not_believed_unless_behind_the_proxy(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS, clock=ManualClock(DECEMBER_FIRST_NOON))
    statuses = [
        (await login(client, "guess", **{"X-Forwarded-For": f"203.0.113.{n}"})).status
        for n in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3


async def test_behind_the_proxy_each_forwarded_address_counts_apart_until_the_global_limit(
    make_broker: BrokerFactory,
):
    client = await make_broker(
        ops={**OPS, "login_burst_global": 12, "login_per_minute_global": 1.0},
        server={"behind_tls_proxy": True},
        clock=ManualClock(DECEMBER_FIRST_NOON),
    )
    # The proxy appends (or sets) the address it saw last; what the client wrote comes first.
    one = {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}
    assert [(await login(client, "guess", **one)).status for _ in range(6)] == [401] * 5 + [429]
    others = [
        (await login(client, "guess", **{"X-Forwarded-For": f"203.0.113.{n}"})).status
        for n in range(2, 12)
    ]
    assert others == [401] * 7 + [429] * 3
    refused = await login(client, PASSWORD, **{"X-Forwarded-For": "203.0.113.99"})
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "60"
    assert "too many sign-in attempts to the console right now" in await refused.text()


def test_addresses_remembered_are_bounded_and_ipv6_counts_per_64():
    throttle = LoginThrottle(limits(max_addresses=3, global_burst=1000))
    for n in range(50):
        throttle.take(f"192.0.2.{n}", 0.0)
    assert throttle.tracked_addresses == 3
    for host in range(5):
        assert throttle.take(f"2001:db8:1:2::{host + 1}", 0.0) is None
    refused = throttle.take("2001:db8:1:2:ffff::1", 0.0)
    assert refused is not None
    assert refused.reason is LoginRefusal.ADDRESS
    assert throttle.take("2001:db8:1:3::1", 0.0) is None  # another /64


def test_a_bucket_refills_with_time_on_the_injected_clock():
    throttle = LoginThrottle(limits(per_address_burst=2, per_address_per_minute=6.0))
    assert throttle.take("192.0.2.1", 100.0) is None
    assert throttle.take("192.0.2.1", 100.0) is None
    refused = throttle.take("192.0.2.1", 100.0)
    assert refused is not None
    assert refused.retry_after_seconds == 10.0
    assert throttle.take("192.0.2.1", 109.0) is not None
    assert throttle.take("192.0.2.1", 110.0) is None


async def hold(pool: Any, jobs: int) -> tuple[threading.Event, list[asyncio.Future[None]]]:
    """Occupy ``jobs`` places in the hashing pool until the returned event is set."""
    release = threading.Event()
    started = threading.Semaphore(0)

    def job() -> None:
        started.release()
        release.wait(30)

    held = [asyncio.ensure_future(pool.run(job)) for _ in range(jobs)]
    await asyncio.sleep(0)  # let each run() claim its place before the test goes on
    assert await asyncio.to_thread(started.acquire, True, DEADLINE)
    return release, held


async def test_a_full_hashing_queue_answers_429_at_once_and_no_password_waits(
    make_broker: BrokerFactory,
):
    client = await make_broker(
        ops={**OPS, "password_hash_threads": 1, "password_hash_queue": 1},
        clock=ManualClock(DECEMBER_FIRST_NOON),
    )
    pool = client.app[ops_hashing_key]
    release, held = await hold(pool, 2)  # one running, one queued: full
    try:
        refused = await asyncio.wait_for(login(client, PASSWORD), DEADLINE)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        assert "checking too many sign-ins" in await refused.text()
        metrics = await (await client.get("/metrics")).text()
        assert 'broker_ops_login_refused_total{reason="hashing_busy"} 1.0' in metrics
    finally:
        release.set()
        await asyncio.gather(*held)
    assert pool.in_flight == 0
    # A busy refusal took nothing from the address's budget.
    assert (await login(client, PASSWORD)).status == 303


async def test_readyz_answers_while_the_hashing_threads_are_saturated(
    make_broker: BrokerFactory,
):
    client = await make_broker(
        ops={
            **OPS,
            "password_hash_threads": 1,
            "password_hash_queue": 2,
            "login_burst_per_address": 1000,
            "login_burst_global": 1000,
        },
    )
    release, held = await hold(client.app[ops_hashing_key], 3)
    try:
        flood = [asyncio.ensure_future(login(client, f"guess-{n}")) for n in range(20)]
        ready = await asyncio.wait_for(client.get("/readyz"), DEADLINE)
        assert ready.status == 200, await ready.text()
        answers = await asyncio.wait_for(asyncio.gather(*flood), DEADLINE)
        assert {answer.status for answer in answers} == {429}
    finally:
        release.set()
        await asyncio.gather(*held)


async def test_a_sign_in_never_waits_for_the_default_executor(make_broker: BrokerFactory):
    client = await make_broker(ops=OPS, clock=ManualClock(DECEMBER_FIRST_NOON))
    loop = asyncio.get_running_loop()
    busy = ThreadPoolExecutor(max_workers=1, thread_name_prefix="default-held")
    loop.set_default_executor(busy)
    release = threading.Event()
    held = loop.run_in_executor(None, release.wait, 30)
    try:
        answer = await asyncio.wait_for(login(client, PASSWORD), DEADLINE)
        assert answer.status == 303
    finally:
        release.set()
        await held
        loop.set_default_executor(ThreadPoolExecutor())
        busy.shutdown()
