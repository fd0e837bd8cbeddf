"""The platform simulator behaves as docs/contracts.md §1 says, and its faults do what they claim.

Other tests trust this simulator to stand in for the Developer Console, so each behaviour the
broker relies on is proved here against the real aiohttp app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from structlog.testing import capture_logs

from broker.simulators.platform import PlatformSimulator

KEY = "sim-zapikey-0123456789"
ZGID = "700123"
PLAN = "5001"


def path(zgid: str = ZGID, planid: str = PLAN, key: str | None = KEY) -> str:
    base = f"/crm/v2/settings/subscription/{zgid}/plan/{planid}"
    return base if key is None else f"{base}?zapikey={key}"


def add_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "zuid": "9001",
        "no_of_users": "5",
        "frequency": "1",
        "subscription_id": "sub-1",
        "storage_units": "2",
        "custom_pricing_json": {"StandardLicense": "5"},
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


CANCEL_BODY = {"zuid": "9001", "subscription_id": "sub-1"}


@pytest.fixture
def sim() -> PlatformSimulator:
    return PlatformSimulator(KEY)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, sim: PlatformSimulator) -> TestClient[Any, Any]:
    return await aiohttp_client(sim.app())


@pytest.mark.parametrize("key", ["wrong-key", "", None, "cl%C3%A9"])
async def test_wrong_or_missing_zapikey_is_refused_with_401(
    client: TestClient[Any, Any], sim: PlatformSimulator, key: str | None
) -> None:
    resp = await client.post(path(key=key), json=add_body())

    assert resp.status == 401
    assert (await resp.json())["code"] == "INVALID_TOKEN"
    assert sim.subscriptions == {}
    assert [(c.status, c.applied) for c in sim.calls] == [(401, False)]


async def test_add_modify_cancel_walk_one_subscription_through_its_life(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    added = await client.post(path(), json=add_body())
    assert (added.status, await added.json()) == (200, {"Message": "Success"})
    org = sim.subscriptions[ZGID]
    assert (org.planid, org.no_of_users, org.frequency, org.active) == (PLAN, "5", "1", True)

    modified = await client.put(
        path(planid="5002"), json=add_body(no_of_users="8", frequency="4", storage_units="0")
    )
    assert (modified.status, await modified.json()) == (200, {"Message": "Success"})
    org = sim.subscriptions[ZGID]
    assert (org.planid, org.no_of_users, org.frequency, org.storage_units) == (
        "5002",
        "8",
        "4",
        "0",
    )

    cancelled = await client.delete(path(planid="5002"), json=CANCEL_BODY)
    assert (cancelled.status, await cancelled.json()) == (200, {"Message": "Success"})
    assert sim.subscriptions[ZGID].active is False
    assert [c.method for c in sim.applied] == ["POST", "PUT", "DELETE"]


@pytest.mark.parametrize(
    "field", ["zuid", "no_of_users", "frequency", "subscription_id", "storage_units"]
)
async def test_add_without_a_mandatory_field_is_400_naming_it(
    client: TestClient[Any, Any], sim: PlatformSimulator, field: str
) -> None:
    body = add_body()
    del body[field]

    resp = await client.post(path(), json=body)

    assert resp.status == 400
    error = await resp.json()
    assert (error["code"], error["details"]) == ("INVALID_DATA", {"field": field})
    assert field in error["message"]
    assert sim.subscriptions == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"no_of_users": 5}, "no_of_users"),
        ({"zuid": 9001}, "zuid"),
        ({"frequency": "2"}, "frequency"),
        ({"no_of_users": "0"}, "no_of_users"),
        ({"storage_units": "-1"}, "storage_units"),
        ({"zuid": "abc"}, "zuid"),
        ({"custom_pricing_json": "not json"}, "custom_pricing_json"),
        ({"custom_pricing_json": ["a"]}, "custom_pricing_json"),
    ],
)
async def test_wrongly_typed_or_shaped_value_is_400_naming_the_field(
    client: TestClient[Any, Any], changes: dict[str, Any], field: str
) -> None:
    resp = await client.post(path(), json=add_body(**changes))

    assert resp.status == 400
    assert (await resp.json())["details"] == {"field": field}


async def test_non_numeric_zgid_and_non_object_body_are_400(client: TestClient[Any, Any]) -> None:
    bad_zgid = await client.post(path(zgid="org1"), json=add_body())
    not_object = await client.post(path(), data=b"[1, 2]")

    assert (bad_zgid.status, (await bad_zgid.json())["details"]) == (400, {"field": "zgid"})
    assert (not_object.status, (await not_object.json())["details"]) == (400, {"field": "body"})


async def test_custom_pricing_json_as_a_string_of_json_is_accepted_and_stored_as_given(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    resp = await client.post(
        path(), json=add_body(custom_pricing_json='{"SuperAdminLicense": "1"}')
    )

    assert resp.status == 200
    assert sim.subscriptions[ZGID].custom_pricing_json == '{"SuperAdminLicense": "1"}'


async def test_modify_without_an_active_subscription_answers_failure(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    resp = await client.put(path(), json=add_body())

    assert (resp.status, await resp.json()) == (200, {"Message": "Failure"})
    assert sim.applied == []
    assert sim.subscriptions == {}


async def test_cancel_of_another_plan_or_subscription_answers_failure(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    await client.post(path(), json=add_body())

    other_plan = await client.delete(path(planid="9999"), json=CANCEL_BODY)
    other_sub = await client.delete(path(), json={**CANCEL_BODY, "subscription_id": "sub-2"})

    assert await other_plan.json() == {"Message": "Failure"}
    assert await other_sub.json() == {"Message": "Failure"}
    assert sim.subscriptions[ZGID].active is True


@pytest.mark.parametrize(("mode", "answer"), [("accept", "Success"), ("fail", "Failure")])
async def test_repeated_add_follows_the_duplicate_add_setting(
    aiohttp_client: AiohttpClient, mode: Any, answer: str
) -> None:
    sim = PlatformSimulator(KEY, duplicate_add=mode)
    client = await aiohttp_client(sim.app())
    await client.post(path(), json=add_body())

    again = await client.post(path(), json=add_body())

    assert (again.status, await again.json()) == (200, {"Message": answer})
    assert sim.calls[1].applied is (answer == "Success")
    assert sim.subscriptions[ZGID].active is True


@pytest.mark.parametrize(
    ("mode", "status", "answer"),
    [
        ("failure", 200, {"Message": "Failure"}),
        (
            "not_found",
            404,
            {
                "code": "NOT_FOUND",
                "status": "error",
                "message": "no active subscription sub-1 at this org",
                "details": {},
            },
        ),
        ("failure_gone", 200, {"Message": "Failure", "details": "Subscription already cancelled"}),
        (
            "forbidden",
            403,
            {
                "code": "NO_PERMISSION",
                "status": "error",
                "message": "permission denied",
                "details": {},
            },
        ),
    ],
)
async def test_repeated_cancel_follows_the_repeated_cancel_setting(
    aiohttp_client: AiohttpClient, mode: Any, status: int, answer: dict[str, Any]
) -> None:
    """docs/contracts.md §1 does not say how a second Cancel is refused: each way is playable."""
    sim = PlatformSimulator(KEY, repeated_cancel=mode)
    client = await aiohttp_client(sim.app())
    await client.post(path(), json=add_body())
    first = await client.delete(path(), json=CANCEL_BODY)
    assert (first.status, await first.json()) == (200, {"Message": "Success"})

    again = await client.delete(path(), json=CANCEL_BODY)
    never_added = await client.delete(path(zgid="700999"), json=CANCEL_BODY)

    assert (again.status, await again.json()) == (status, answer)
    assert (never_added.status, await never_added.json()) == (status, answer)
    assert [c.applied for c in sim.calls] == [True, True, False, False]
    assert sim.subscriptions[ZGID].active is False


async def test_fail_next_answers_the_status_with_retry_after_then_recovers(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    sim.fail_next(2, 429, retry_after=1.5)

    first = await client.post(path(), json=add_body())
    second = await client.post(path(), json=add_body())
    third = await client.post(path(), json=add_body())

    assert (first.status, first.headers["Retry-After"]) == (429, "1.5")
    assert (await first.json())["code"] == "TOO_MANY_REQUESTS"
    assert second.status == 429
    assert third.status == 200
    assert [c.applied for c in sim.calls] == [False, False, True]


async def test_fail_next_comes_before_authentication_and_validation(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    sim.fail_next(1, 503, body={"status": "error", "code": "DOWN"})

    resp = await client.post(path(key="wrong"), data=b"garbage")

    assert (resp.status, await resp.json()) == (503, {"status": "error", "code": "DOWN"})
    assert "Retry-After" not in resp.headers


async def test_answer_failure_next_answers_200_failure_and_applies_nothing(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    sim.answer_failure_next(1)

    failed = await client.post(path(), json=add_body())
    succeeded = await client.post(path(), json=add_body())

    assert (failed.status, await failed.json()) == (200, {"Message": "Failure"})
    assert await succeeded.json() == {"Message": "Success"}
    assert [c.applied for c in sim.calls] == [False, True]


async def test_down_drops_the_connection_until_it_comes_up(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    sim.go_down()

    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post(path(), json=add_body())
    assert [(c.status, c.applied) for c in sim.calls] == [(0, False)]
    assert sim.subscriptions == {}

    sim.come_up()
    resp = await client.post(path(), json=add_body())
    assert resp.status == 200


async def test_delayed_call_whose_client_timed_out_is_never_applied(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    sim.set_delay(30)

    with pytest.raises(TimeoutError):
        # 0.5 s: long enough for the request to reach the simulator on a loaded machine.
        await client.post(path(), json=add_body(), timeout=aiohttp.ClientTimeout(total=0.5))
    await sim.wait_until(lambda s: any(c.aborted for c in s.calls))

    assert [(c.aborted, c.applied) for c in sim.calls] == [(True, False)]
    assert sim.subscriptions == {}


@pytest.fixture
async def plain_server(sim: PlatformSimulator) -> AsyncIterator[str]:
    """The simulator served like `broker demo` serves it: handlers are not cancelled."""
    runner = web.AppRunner(sim.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_delayed_call_is_not_applied_when_the_server_does_not_cancel_handlers(
    plain_server: str, sim: PlatformSimulator
) -> None:
    # The client gives up well after its request has reached the server (even on a loaded
    # machine) and well before the server would apply it.
    sim.set_delay(1.5)

    async with aiohttp.ClientSession(plain_server) as session:
        with pytest.raises(TimeoutError):
            await session.post(path(), json=add_body(), timeout=aiohttp.ClientTimeout(total=0.5))
        await sim.wait_until(lambda s: any(c.aborted for c in s.calls))

    assert [(c.aborted, c.applied) for c in sim.calls] == [(True, False)]
    assert sim.subscriptions == {}


async def test_slow_call_that_the_client_waits_for_is_applied(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    sim.set_delay(0.01)

    resp = await client.post(path(), json=add_body())

    assert resp.status == 200
    assert sim.subscriptions[ZGID].active is True


async def test_wait_until_times_out_with_the_calls_it_saw(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    await client.put(path(), json=add_body())

    with pytest.raises(TimeoutError, match=r"PUT 700123/plan/5001 -> 200 not applied"):
        await sim.wait_until(lambda s: len(s.applied) == 1, timeout=0.01)


async def test_control_routes_script_faults_and_report_state(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    faults = await client.post(
        "/_sim/faults", json={"fail_next": 1, "status": 500, "retry_after": 2}
    )
    assert (faults.status, await faults.json()) == (200, {"ok": True})

    failed = await client.post(path(), json=add_body())
    assert (failed.status, failed.headers["Retry-After"]) == (500, "2")
    await client.post(path(), json=add_body())

    calls = (await (await client.get("/_sim/calls")).json())["calls"]
    assert [(c["method"], c["status"], c["applied"]) for c in calls] == [
        ("POST", 500, False),
        ("POST", 200, True),
    ]
    subscriptions = (await (await client.get("/_sim/subscriptions")).json())["subscriptions"]
    assert subscriptions[ZGID]["subscription_id"] == "sub-1"

    reset = await client.post("/_sim/reset")
    assert reset.status == 200
    assert (sim.calls, sim.subscriptions) == ([], {})


async def test_control_routes_keep_working_while_down(
    client: TestClient[Any, Any], sim: PlatformSimulator
) -> None:
    down = await client.post("/_sim/faults", json={"down": True, "delay": 0})
    assert down.status == 200

    with pytest.raises(aiohttp.ClientConnectionError):
        await client.delete(path(), json=CANCEL_BODY)
    calls = await client.get("/_sim/calls")
    up = await client.post("/_sim/faults", json={"down": False})

    assert calls.status == 200
    assert up.status == 200
    assert (await client.post(path(), json=add_body())).status == 200


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"fail_next": -1}, "fail_next"),
        ({"fail_next": "2"}, "fail_next"),
        ({"down": "yes"}, "down"),
        ({"fial_next": 1}, "fial_next"),
        ({"fail_next": 1, "status": 204}, "status"),
        ({"status": 500}, "status"),
    ],
)
async def test_bad_fault_requests_are_400_naming_the_problem(
    client: TestClient[Any, Any], payload: dict[str, Any], named: str
) -> None:
    resp = await client.post("/_sim/faults", json=payload)

    assert resp.status == 400
    assert named in (await resp.json())["error"]


async def test_log_lines_carry_the_call_but_never_the_zapikey(
    client: TestClient[Any, Any],
) -> None:
    with capture_logs() as logs:
        await client.post(path(), json=add_body())
        await client.post(path(key="wrong"), json=add_body())

    assert [(line["status"], line["applied"]) for line in logs] == [(200, True), (401, False)]
    assert all(line["path"] == path(key=None) for line in logs)
    assert KEY not in repr(logs)
