"""Health, readiness and metrics: what a load balancer and a monitoring system read."""

from __future__ import annotations

from broker.simulators.platform import PlatformSimulator
from broker.web.appkeys import worker_key
from tests.conftest import db_rows, post_event
from tests.support.basics import DECEMBER_FIRST_NOON, ManualClock, eventually, subscription_event


async def test_healthz_answers_ok(broker):
    response = await broker.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_reports_store_and_worker(broker):
    response = await broker.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ready",
        "checks": {"store": "ok", "disk": "ok", "delivery_worker": "ok"},
        "reconcile": "off: no [billing] section",
    }
    # A real write, not an empty transaction: the heartbeat row is there.
    [row] = await db_rows(broker, "SELECT id FROM readiness_heartbeat")
    assert row["id"] == 1


async def test_readyz_is_503_when_the_delivery_worker_has_stopped(broker):
    """A broker that takes webhooks but sends nothing on must leave the load balancer's pool."""
    await broker.app[worker_key].stop(grace_seconds=1.0)
    response = await broker.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "status": "not_ready",
        "checks": {"store": "ok", "disk": "ok", "delivery_worker": "not running"},
        "reconcile": "off: no [billing] section",
    }


async def test_metrics_count_webhooks_and_show_the_outbox(
    make_broker, simulator: PlatformSimulator
):
    clock = ManualClock(DECEMBER_FIRST_NOON)
    broker = await make_broker(clock=clock)
    simulator.go_down()
    await post_event(broker, subscription_event())

    async def pending_shown() -> bool:
        text = await (await broker.get("/metrics")).text()
        return 'broker_deliveries{state="pending"} 1.0' in text or (
            'broker_deliveries{state="in_flight"} 1.0' in text
        )

    await eventually(pending_shown, message="the waiting delivery on /metrics")
    text = await (await broker.get("/metrics")).text()
    assert 'broker_webhooks_total{outcome="queued"} 1.0' in text
    age = next(
        line
        for line in text.splitlines()
        if line.startswith("broker_oldest_pending_delivery_seconds ")
    )
    assert age == "broker_oldest_pending_delivery_seconds 0.0"  # the clock has not moved
    clock.advance(42.0)
    text = await (await broker.get("/metrics")).text()
    assert "broker_oldest_pending_delivery_seconds 42.0" in text.splitlines()

    simulator.come_up()

    async def delivered_once_due() -> bool:
        """Move the clock to the scheduled retry (the worker may still be mid-attempt)."""
        [row] = await db_rows(broker, "SELECT state, next_attempt_at FROM deliveries")
        if row["state"] == "pending" and row["next_attempt_at"] > clock.now:
            clock.now = row["next_attempt_at"]
            broker.app[worker_key].wake()
        return len(simulator.applied) == 1

    await eventually(delivered_once_due, message="the delivery applied once the platform is up")

    async def done_shown() -> bool:
        text = await (await broker.get("/metrics")).text()
        return 'broker_deliveries{state="done"} 1.0' in text

    await eventually(done_shown, message="the delivery counted as done")
    text = await (await broker.get("/metrics")).text()
    assert "broker_oldest_pending_delivery_seconds 0.0" in text
    assert 'broker_platform_calls_total{action="add",outcome="success"} 1.0' in text
