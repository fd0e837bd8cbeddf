"""Which billing events may change what the platform holds (docs/contracts.md §3). No I/O here.

Only subscription events (``subscription_*``, which include the guessed ``subscription_paused``
and ``subscription_resumed``) may update a stored snapshot or queue a call. Payment, invoice,
credit note and card events often carry a full subscription too, but they report money, not a
change of plan: letting them drive the platform would send an Add for a payment receipt.
Money events (refunds, chargebacks, voids, credit notes) are not decided here: the pipeline hands
them to ``core.money_events`` first, and they may withhold access but never replace a snapshot.
``trial_expiring`` and ``billing_date_changed`` are notices: they carry the subscription as it is,
and the subscription event that follows any real change carries it too.
"""

from __future__ import annotations

from enum import StrEnum

SUBSCRIPTION_PREFIX = "subscription_"
# Events that carry a subscription but announce something; the "no change" row of
# docs/guarantees.md.
NOTICE_EVENTS = frozenset({"trial_expiring", "billing_date_changed"})


class EventKind(StrEnum):
    SUBSCRIPTION = "subscription"  # may update the snapshot and queue a platform call
    NOTICE = "notice"  # carries a subscription; stored, never applied
    OTHER = "other"  # payment, invoice, credit note, card, anything else: stored, never applied


def event_kind(event_type: str) -> EventKind:
    name = event_type.strip().lower()
    if name.startswith(SUBSCRIPTION_PREFIX):
        return EventKind.SUBSCRIPTION
    if name in NOTICE_EVENTS:
        return EventKind.NOTICE
    return EventKind.OTHER


def why_not_applied(event_type: str) -> str:
    """The reason an event was stored but changed nothing, for the webhook's answer and the log."""
    kind = event_kind(event_type)
    if kind is EventKind.NOTICE:
        what = "is a notice that changes no subscription"
    else:
        what = "is not a subscription event"
    return (
        f"{event_type} {what}: stored, no platform call (only {SUBSCRIPTION_PREFIX}* events "
        "change what the platform holds)"
    )
