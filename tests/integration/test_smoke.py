"""The quick-start path: a new subscription webhook becomes one Add call on the platform."""

from broker.simulators.platform import PlatformSimulator
from tests.conftest import post_event
from tests.support.basics import ZGID, ZUID, subscription_event


async def test_new_subscription_reaches_platform_as_add(broker, simulator: PlatformSimulator):
    response = await post_event(broker, subscription_event())
    assert response.status == 200
    await simulator.wait_until(lambda s: len(s.applied) == 1)
    call = simulator.applied[0]
    assert (call.method, call.zgid, call.planid) == ("POST", ZGID, "1001")
    assert call.body == {
        "zuid": ZUID,
        "no_of_users": "5",
        "frequency": "1",
        "subscription_id": "100000000000000001",
        "storage_units": "0",
    }
