"""A reconciliation run's hold on the lock, kept for as long as the run goes on.

The lock is a lease (``reconcile.lease_seconds``) so that a process that dies frees it; a run
longer than the lease (slow billing, many pages) renews it. Every write the run makes renews it
in the same transaction (``store.reconcile.while_held``), and between writes ``keep`` renews it
once a third of the lease has passed, so a run that only reads still holds it. If the renewal
finds the lock taken by another process, ``LockLost`` stops the run before it writes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from broker.store import reconcile as rows
from broker.store.engine.backend import StoreBackend
from broker.store.engine.tx import Tx

T = TypeVar("T")


class RunLease:
    """The lease one run took at ``taken_at``; renewed on the injected ``clock``."""

    def __init__(
        self,
        store: StoreBackend,
        owner: str,
        *,
        seconds: float,
        clock: Callable[[], float],
        taken_at: float,
    ) -> None:
        self._store = store
        self._owner = owner
        self._seconds = seconds
        self._clock = clock
        self._renewed = taken_at

    async def write(self, work: Callable[[Tx], T]) -> T:
        """``work`` in one transaction with the renewal; ``LockLost`` (nothing written) if the
        lock is no longer this run's."""
        now = self._clock()
        held = partial(rows.while_held, work=work, owner=self._owner, now=now, lease=self._seconds)
        result = await self._store.write(held)
        self._renewed = now
        return result

    async def keep(self) -> None:
        """Renew the lease if a third of it has passed since the last renewal (before a read)."""
        if self._clock() - self._renewed >= self._seconds / 3:
            await self.write(_nothing)


def _nothing(db: Tx) -> None:
    return None
