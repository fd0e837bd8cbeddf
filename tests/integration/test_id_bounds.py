"""Every id the broker takes from outside is bounded: a webhook's event_id and codes, the
console's path ids and the command line's. An oversized one is a 400 naming the field and the
limit; it is never stored, logged or shown back."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from tests.conftest import BrokerFactory, db_rows, post_event
from tests.support.basics import subscription_event
from tests.support.cli import run_cli
from tests.support.ops import OPS, sign_in

HUGE_EVENT_ID = "9" * 10_000


async def test_a_ten_thousand_character_event_id_is_refused_and_never_stored_or_shown(
    make_broker: BrokerFactory,
):
    client = await make_broker(ops=OPS)
    with capture_logs() as logs:
        response = await post_event(client, subscription_event(event_id=HUGE_EVENT_ID))
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_payload"
    assert body["details"]["problems"] == [
        "event_id: Value error, must be at most 64 characters (this one has 10000)"
    ]
    assert HUGE_EVENT_ID[:100] not in await response.text()
    assert HUGE_EVENT_ID[:100] not in str(logs)
    assert await db_rows(client, "SELECT event_id FROM webhook_events", []) == []

    await sign_in(client)
    events = await client.get("/ops/events")
    assert events.status == 200
    assert HUGE_EVENT_ID[:100] not in await events.text()


async def test_an_event_id_of_64_characters_is_accepted_and_65_is_not(broker):
    longest = "e" * 64
    accepted = await post_event(broker, subscription_event(event_id=longest))
    assert accepted.status == 200, await accepted.text()
    refused = await post_event(broker, subscription_event(event_id=longest + "e"))
    assert refused.status == 400
    assert "event_id" in (await refused.json())["details"]["problems"][0]


async def test_an_oversized_plan_code_is_refused_naming_the_field(broker):
    response = await post_event(broker, subscription_event(plan_code="p" * 101))
    assert response.status == 400
    problems = (await response.json())["details"]["problems"]
    assert problems == [
        "data.subscription.plan.plan_code: String should have at most 100 characters"
    ]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/ops/events/" + "7" * 1000, "event_id must be at most 64 characters"),
        ("POST", "/ops/events/" + "7" * 1000 + "/replay", "event_id must be at most 64 characters"),
        (
            "GET",
            "/ops/subscriptions/" + "1" * 1000,
            "subscription_id must be ASCII digits only, 1 to 32",
        ),
        ("GET", "/ops/subscriptions/abc%3Cscript%3E", "subscription_id must be ASCII digits only"),
        ("GET", "/ops/parked/" + "1" * 1000 + "/resolve", "subscription_id must be ASCII digits"),
    ],
)
async def test_console_path_ids_are_bounded_with_a_400_naming_the_field(
    make_broker: BrokerFactory, method: str, path: str, message: str
):
    client = await make_broker(ops=OPS)
    csrf = await sign_in(client)
    data = {"csrf": csrf} if method == "POST" else None
    response = await client.request(method, path, data=data, allow_redirects=False)
    assert response.status == 400
    text = await response.text()
    assert message in text
    assert "7" * 100 not in text
    assert "1" * 100 not in text
    assert "<script>" not in text


def test_the_command_line_refuses_an_oversized_event_id(capsys, tmp_path):
    for argv in (
        ("events", "show", "8" * 1000, "--db", str(tmp_path / "broker.db")),
        ("events", "replay", "8" * 1000),
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert "event_id must be at most 64 characters (this one has 1000)" in err
        assert "8" * 100 not in out + err
