"""Which actions each subscription status allows: the one rule the page and every handler use.

Pure: no I/O, no aiohttp. The overview shows a button only for an allowed action, and every
action's GET form and POST handler asks ``permitted`` again and refuses the rest (409, audited),
so a hidden button cannot be pressed by posting the form by hand. Rights (the billing owner, or
every member with ``landing.members_can_manage``) are the second filter: anyone in the org may
subscribe, only a manager may do the rest. Billing keeps the last word: an allowed action it
refuses is shown as billing's refusal.

The "What each status allows" table of docs/customer-page.md is checked against
``STATUS_ACTIONS`` by a test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from broker.core.billing_status import BillingStatus, read_status


class Action(StrEnum):
    """What the Manage Subscription page can do; the value is the action's path segment."""

    SUBSCRIBE = "subscribe"
    CHANGE = "change"
    CANCEL = "cancel"
    REACTIVATE = "reactivate"
    PAUSE = "pause"
    RESUME = "resume"


A = Action
S = BillingStatus
STATUS_ACTIONS: Mapping[BillingStatus, frozenset[Action]] = MappingProxyType(
    {
        S.LIVE: frozenset({A.CHANGE, A.CANCEL, A.PAUSE}),
        S.TRIAL: frozenset({A.CHANGE, A.CANCEL}),
        S.FUTURE: frozenset({A.CANCEL}),  # not started: nothing to change or pause yet
        S.DUNNING: frozenset({A.CHANGE, A.CANCEL}),
        S.UNPAID: frozenset({A.CHANGE, A.CANCEL}),
        S.NON_RENEWING: frozenset({A.CHANGE, A.REACTIVATE}),  # already ends at term end
        S.CANCELLED: frozenset({A.SUBSCRIBE, A.REACTIVATE}),  # reactivate: only while in term
        S.CANCELLED_FROM_DUNNING: frozenset({A.SUBSCRIBE}),
        S.EXPIRED: frozenset({A.SUBSCRIBE}),
        S.TRIAL_EXPIRED: frozenset({A.SUBSCRIBE}),
        S.CREATION_FAILED: frozenset({A.SUBSCRIBE}),
        S.PAUSED: frozenset({A.RESUME}),  # resume first; billing changes nothing while paused
        S.DELETED: frozenset({A.SUBSCRIBE}),
    }
)
NO_SUBSCRIPTION: frozenset[Action] = frozenset({A.SUBSCRIBE})
# Only a cancelled subscription still in its paid term can be reactivated (docs/contracts.md §5).
NEEDS_TERM: Mapping[Action, frozenset[BillingStatus]] = MappingProxyType(
    {A.REACTIVATE: frozenset({S.CANCELLED})}
)
# Everyone in the org may buy when nothing runs; everything else is the manager's.
ANYONE: frozenset[Action] = frozenset({A.SUBSCRIBE})

_DONE = {
    A.CHANGE: "changed",
    A.CANCEL: "cancelled",
    A.REACTIVATE: "reactivated",
    A.PAUSE: "paused",
    A.RESUME: "resumed",
}
_HINTS = {
    S.PAUSED: "resume it first",
    S.NON_RENEWING: "it already ends at the end of its term; reactivate it to keep it",
    S.FUTURE: "wait until it starts",
    S.CANCELLED: "choose a plan to subscribe again",
}


@dataclass(frozen=True)
class SubscriptionFacts:
    """What the rule needs to know about the org's current subscription."""

    status: BillingStatus | None  # None: billing sent a status this broker does not know
    raw_status: str
    in_term: bool  # today is on or before the current term's last day (unknown counts as in)

    @classmethod
    def of(cls, status: str | None, term_ends_at: object, today: date) -> SubscriptionFacts:
        word = read_status((status or "").strip())
        known = word if isinstance(word, BillingStatus) else None
        return cls(known, str(word), _in_term(term_ends_at, today))


@dataclass(frozen=True)
class Refusal:
    """Why an action is not available, in words for the person on the page."""

    message: str
    hint: str


def allowed_actions(facts: SubscriptionFacts | None) -> frozenset[Action]:
    """What a subscription in this state allows, whoever asks (None: the org has none)."""
    if facts is None:
        return NO_SUBSCRIPTION
    if facts.status is None:
        return frozenset()  # an unknown status: touch nothing until someone knows what it means
    return frozenset(
        action
        for action in STATUS_ACTIONS[facts.status]
        if facts.in_term or facts.status not in NEEDS_TERM.get(action, frozenset())
    )


def permitted(facts: SubscriptionFacts | None, *, can_manage: bool) -> frozenset[Action]:
    """What this viewer may do: the status allows it and their rights cover it."""
    return frozenset(a for a in allowed_actions(facts) if can_manage or a in ANYONE)


def refusal(facts: SubscriptionFacts | None, action: Action) -> Refusal:
    """Why ``action`` is not allowed for this state (call only when it is not)."""
    if action is A.SUBSCRIBE:
        return Refusal(
            "your organisation already has a running subscription",
            "change it from the subscription page instead",
        )
    if facts is None:
        return Refusal(
            "your organisation has no running subscription to change",
            "choose a plan to subscribe",
        )
    if facts.status is None:
        return Refusal(
            f"billing reports this subscription as {facts.raw_status or 'unknown'!r}, "
            "which this page does not handle",
            "ask the vendor to make the change",
        )
    words = facts.status.value.replace("_", " ")
    if facts.status in NEEDS_TERM.get(action, frozenset()) and not facts.in_term:
        return Refusal(
            f"this subscription's term has ended, so it cannot be {_DONE[action]}",
            "choose a plan to subscribe again",
        )
    return Refusal(
        f"a {words} subscription cannot be {_DONE[action]}",
        _HINTS.get(facts.status, "the subscription page shows what you can do now"),
    )


def _in_term(term_ends_at: object, today: date) -> bool:
    if not isinstance(term_ends_at, str) or not term_ends_at:
        return True  # unknown: billing decides
    try:
        return today <= date.fromisoformat(term_ends_at[:10])
    except ValueError:
        return True
