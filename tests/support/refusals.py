"""What the tests of the refused-webhook counts share: the naps of the timer that flushes them to
the store, told apart from the delivery worker's."""

from __future__ import annotations

from broker.web.refused import FLUSH_INTERVAL_SECONDS
from tests.support.basics import ManualTime


def timer_naps(time: ManualTime) -> list[float]:
    """The timer's naps (the delivery worker's are a fraction of a second)."""
    return [nap for nap in time.naps if nap - time.now >= FLUSH_INTERVAL_SECONDS - 1]
