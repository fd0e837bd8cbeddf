"""Posting events to the broker like Zoho's webhooks: the ``zapikey`` header, the optional
``X-Zoho-Webhook-Signature``, no automatic retry, a manual resend with the same ``event_id``.

Tests can hold deliveries back (sent in order on release) or drop them (the next few, all of them,
or a seeded random fraction), to prove the broker copes with webhooks that arrive late or never.
A dropped webhook's event stays in the log ``GET /events`` reads, as at Zoho. One worker posts in
order. Neither the zapikey nor the signing secret is ever logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import structlog
from yarl import URL

from .records import Event

SIGNATURE_HEADER = "X-Zoho-Webhook-Signature"
DeliveryState = Literal["queued", "held", "dropped", "delivered", "failed"]


@dataclass
class WebhookDelivery:
    """One event's delivery record; a resend updates it (``attempts`` counts every post)."""

    event_id: str
    event_type: str
    state: DeliveryState = "queued"
    status: int | None = None  # last HTTP status; 0 when the connection failed; None if unsent
    attempts: int = 0


def signature(secret: str, url: str, body: bytes) -> str:
    """Zoho's scheme (docs/contracts.md section 3): the URL's query pairs sorted by key, each as
    ``keyvalue``, then the raw body; HMAC-SHA256, hex. Without a query string: the body alone."""
    pairs = sorted(URL(url).query.items(), key=lambda pair: pair[0])
    signed = "".join(f"{key}{value}" for key, value in pairs).encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(
        self,
        url: str | None,
        *,
        zapikey: str | None,
        signing_secret: str | None,
        on_change: Callable[[], None],
        timeout_seconds: float = 10.0,
    ) -> None:
        self.url = url
        self._zapikey = zapikey
        self._signing_secret = signing_secret
        self._on_change = on_change
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._log = structlog.get_logger("billing_simulator")
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._held: list[Event] = []
        self._holding = False
        self._drop = 0
        self._drop_all = False
        self._drop_fraction = 0.0
        self._random = random.Random(0)  # noqa: S311 - a reproducible fault, not a secret
        self.deliveries: dict[str, WebhookDelivery] = {}

    def submit(self, event: Event) -> None:
        """A new event: send it, hold it or drop it."""
        if self.url is None:
            return
        record = WebhookDelivery(event.event_id, event.event_type)
        self.deliveries[event.event_id] = record
        if self._should_drop():
            record.state = "dropped"
            self._log.info("billing_webhook_dropped", event_id=event.event_id)
        else:
            self._enqueue(record, event)

    def resend(self, event: Event) -> None:
        """Send the same event (same event_id, same bytes) again, as Zoho's Resend does."""
        if self.url is None:
            raise ValueError("no webhook_url is configured, so there is nothing to resend to")
        record = self.deliveries.setdefault(
            event.event_id, WebhookDelivery(event.event_id, event.event_type)
        )
        self._enqueue(record, event)

    def hold(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._holding = False
        held, self._held = self._held, []
        for event in held:
            self.deliveries[event.event_id].state = "queued"
            self._queue.put_nowait(event)
        self._on_change()

    def drop_next(self, count: int) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        self._drop = count

    def drop_all(self, dropping: bool) -> None:
        self._drop_all = dropping

    def drop_fraction(self, fraction: float, seed: int = 0) -> None:
        """Drop each new webhook with probability ``fraction``, reproducibly from ``seed``."""
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        self._drop_fraction = fraction
        self._random = random.Random(seed)  # noqa: S311 - a reproducible fault, not a secret

    def _should_drop(self) -> bool:
        if self._drop > 0:
            self._drop -= 1
            return True
        if self._drop_all:
            return True
        return self._drop_fraction > 0 and self._random.random() < self._drop_fraction

    def history(self, event_id: str) -> list[dict[str, Any]]:
        """The event's webhook as Zoho's event object lists it (none without a webhook URL)."""
        record = self.deliveries.get(event_id)
        if record is None or self.url is None:
            return []
        status = {"delivered": "success", "queued": "scheduled", "held": "scheduled"}
        return [
            {
                "webhook_id": "2077000000700001",
                "url": self.url,
                "status": status.get(record.state, "failure"),
                "state": record.state,  # ours: tells a dropped webhook from a refused one
            }
        ]

    def _enqueue(self, record: WebhookDelivery, event: Event) -> None:
        if self._holding:
            record.state = "held"
            self._held.append(event)
        else:
            record.state = "queued"
            self._queue.put_nowait(event)

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Post queued events one at a time, in order, until cancelled."""
        while True:
            event = await self._queue.get()
            await self._post(session, event)

    async def _post(self, session: aiohttp.ClientSession, event: Event) -> None:
        assert self.url is not None
        headers = {"Content-Type": "application/json"}
        if self._zapikey is not None:
            headers["zapikey"] = self._zapikey
        if self._signing_secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._signing_secret, self.url, event.body)
        try:
            async with session.post(
                self.url, data=event.body, headers=headers, timeout=self._timeout
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = 0
            self._log.info("billing_webhook_unreachable", error=type(exc).__name__)
        record = self.deliveries[event.event_id]
        record.attempts += 1
        record.status = status
        record.state = "delivered" if 200 <= status < 300 else "failed"
        self._log.info(
            "billing_webhook_sent",
            event_id=event.event_id,
            event_type=event.event_type,
            status=status,
            attempts=record.attempts,
        )
        self._on_change()
