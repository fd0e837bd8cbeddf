"""The pipeline's one decision: given what is stored and what just arrived, what to keep and send.

Every billing input (a webhook, a billing read after a page action or a checkout, a landing
visit that released or claimed a subscription) takes the same three steps: ``store.pipeline``
loads a ``PipelineFacts``; ``decide`` turns it and the new snapshot into a ``Decision``;
``store.pipeline`` writes that decision in the same transaction. Pure: tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from broker.config import LandingVerification, Settings
from broker.core.billing_events import BillingSubscription, WebhookEvent
from broker.core.billing_status import BillingStatus
from broker.core.identity import (
    OTHER_ORG_HINT,
    Claim,
    CustomerRecord,
    UserRecord,
    believed_claim,
    billing_email,
    is_verified,
    merged_customer,
    resolve_identity,
)
from broker.core.landing import LandingParams
from broker.core.mapping import (
    INACTIVE,
    Identity,
    Ignore,
    Park,
    PlatformState,
    Target,
    Unmapped,
    desired_state,
)
from broker.core.org_billing import OrgSubscription, bills, keeper
from broker.core.ours import our_products
from broker.core.partial_snapshot import is_partial, merge_partial
from broker.core.subscription_state import MISSING_IN_BILLING_SOURCE, SubscriptionState
from broker.errors import Forbidden


class Outcome(StrEnum):
    """What became of one billing input (the webhook's answer, its audit row, a metric label)."""

    QUEUED = "queued"  # a delivery to the platform was queued
    UNCHANGED = "unchanged"  # the platform has, or will get, this state already
    STALE = "stale"  # billing already told us something newer
    PARKED = "parked"  # waits for the org's zgid or zuid
    IGNORED = "ignored"  # another product's, or nothing the platform needs
    UNMAPPED_PLAN = "unmapped_plan"  # the app's product, a plan code that does not map: alert
    DUPLICATE = "duplicate"  # this webhook event was received before
    REFUSED = "refused"  # not believable (an updated_time in the future)
    NO_SUBSCRIPTION_NAMED = "no_subscription_named"  # a visit that named none
    CONFLICT = "conflict"  # the org has another subscription that bills; nothing is sent


@dataclass(frozen=True)
class StoredSubscription:
    """A subscriptions row: billing's last snapshot, who it is bound to, what was queued."""

    subscription_id: str
    customer_id: str | None
    zgid: str | None  # from a believed landing claim
    zuid: str | None
    bound_email: str | None
    status: str | None
    plan_code: str | None
    billing_json: str | None
    billing_updated_at: float | None
    billing_source: str | None
    queued_json: str | None
    acked_json: str | None
    updated_at: float
    access_hold: str | None = None  # a money event that withholds access (store/money_events)
    state: SubscriptionState | None = None  # None until a decision marked it
    reason: str | None = None  # why it is in that state, for people

    def __post_init__(self) -> None:
        # Rows come back from SQL as text: a value not in the enum fails here, loudly.
        value: object = self.state
        if value is not None and not isinstance(value, SubscriptionState):
            object.__setattr__(self, "state", SubscriptionState(str(value)))

    @property
    def parked_reason(self) -> str | None:
        """Why it is parked, when it is."""
        return self.reason if self.state is SubscriptionState.PARKED else None

    @property
    def snapshot(self) -> BillingSubscription | None:
        """The billing snapshot kept here, if billing has described the subscription yet."""
        text = self.billing_json
        return BillingSubscription.model_validate_json(text) if text else None

    @property
    def bound(self) -> Identity:
        return Identity(self.zuid, self.zgid)


@dataclass(frozen=True)
class Snapshot:
    """A billing snapshot to keep, with the time that orders it against the stored one."""

    subscription: BillingSubscription
    updated_at: float  # billing's updated_time, else when the snapshot was observed
    source: str

    @classmethod
    def of(cls, subscription: BillingSubscription, *, observed_at: float, source: str) -> Snapshot:
        updated = subscription.updated_time
        return cls(subscription, updated.timestamp() if updated else observed_at, source)


@dataclass(frozen=True)
class PipelineFacts:
    """Everything ``decide`` needs about one subscription, loaded in one step."""

    subscription_id: str
    stored: StoredSubscription | None
    customer: CustomerRecord | None  # the billing customer the snapshot names
    binding: UserRecord | None  # the user whose verified binding may supply the zgid
    claims: tuple[Claim, ...] = ()  # landing claims, oldest first
    learned_products: frozenset[str] = frozenset()  # the app's products, learned from billing
    # The org's other subscriptions that bill (``core.org_billing``), loaded by org.
    siblings: tuple[OrgSubscription, ...] = ()

    def with_claim(self, claim: Claim) -> PipelineFacts:
        """These facts once ``claim`` is recorded (one claim per org, oldest first)."""
        others = [c for c in self.claims if c.zgid != claim.zgid]
        claims = sorted([*others, claim], key=lambda c: (c.claimed_at, c.zgid))
        return replace(self, claims=tuple(claims))

    def owner(self) -> Identity:
        """Who the stored subscription belongs to, as billing or a believed claim says."""
        stored = self.stored
        if stored is None:
            return Identity()
        return resolve_identity(stored.snapshot, self.customer, stored.bound, self.binding)


@dataclass(frozen=True)
class Mark:
    """The subscription's ``state`` and ``reason`` columns after a decision."""

    state: SubscriptionState
    reason: str | None = None  # prose for people: why it stands there


@dataclass(frozen=True)
class Decision:
    """What to write and what to send; nothing of it is written when ``mark`` is None and
    ``keep`` is None (a stale, refused or undescribed subscription)."""

    outcome: Outcome
    reason: str | None
    subscription_id: str
    cause: str = ""
    keep: Snapshot | None = None  # the new billing snapshot
    customer: CustomerRecord | None = None  # the billing customer, merged
    bind: Claim | None = None  # a claim now believed: the subscription's zgid and zuid
    mark: Mark | None = None
    send: PlatformState | None = None  # a new target for the platform: queue a delivery
    warning: str | None = None  # a vendor mistake to show the operator (it is in ``mark`` too)


def event_snapshot(event: WebhookEvent, *, now: float) -> Snapshot | None:
    """The snapshot a subscription webhook carries (None for any other event). Billing cannot
    bring back a deleted subscription, so ``subscription_deleted`` is kept as status deleted."""
    subscription = event.data.subscription
    if subscription is None:
        return None
    if event.event_type == "subscription_deleted":
        subscription = subscription.model_copy(update={"status": BillingStatus.DELETED})
    observed_at = event.created_time.timestamp() if event.created_time else now
    return Snapshot.of(subscription, observed_at=observed_at, source=f"webhook:{event.event_id}")


def decide(
    facts: PipelineFacts,
    incoming: Snapshot | None,
    *,
    settings: Settings,
    now: float,
    cause: str,
) -> Decision:
    """Keep ``incoming`` unless it is older than what is stored, then work out the platform
    state the snapshot calls for, queued only when it differs from what was last queued.
    Without ``incoming``, decide again for the stored snapshot (after a landing visit)."""
    sid = facts.subscription_id
    stored = facts.stored
    customer = facts.customer
    if incoming is not None:
        not_kept = _not_newer(stored, incoming, settings=settings, now=now)
        if not_kept is not None:
            return not_kept
        filled = _fill_partial(stored, incoming)
        if isinstance(filled, Decision):
            return filled
        incoming = filled
        snapshot = incoming.subscription
        customer = merged_customer(snapshot, customer, now)
    else:
        kept = stored.snapshot if stored else None
        if kept is None:
            return Decision(Outcome.PARKED, "no billing state known yet", sid)
        snapshot = kept
    bound = stored.bound if stored else Identity()
    identity = resolve_identity(snapshot, customer, bound, facts.binding)
    bind = None
    if facts.claims and not identity.zgid:
        email = billing_email(snapshot, customer)
        require = settings.landing.require_email_match
        bind = believed_claim(facts.claims, email, require_email_match=require)
        if bind is not None:
            bound = Identity(bind.zuid, bind.zgid)
            identity = resolve_identity(snapshot, customer, bound, facts.binding)
    writes = Decision(
        Outcome.QUEUED,
        None,
        sid,
        cause=cause,
        keep=incoming,
        customer=customer if incoming is not None else None,
        bind=bind,
    )
    wanted = desired_state(
        snapshot,
        identity=identity,
        app_domain=settings.platform.app_domain,
        plans=settings.plans,
        our_products=our_products(settings.platform.product_id, facts.learned_products),
        min_users=settings.platform.min_users,
    )
    if isinstance(wanted, Unmapped):
        mark = Mark(SubscriptionState.UNMAPPED_PLAN, wanted.reason)
        return replace(writes, outcome=Outcome.UNMAPPED_PLAN, reason=wanted.reason, mark=mark)
    if isinstance(wanted, Park):
        reason = wanted.reason
        if facts.claims:
            reason += (
                " (a Manage Subscription visit named this subscription, but its email "
                "does not match the billing customer's)"
            )
        return replace(
            writes,
            outcome=Outcome.PARKED,
            reason=reason,
            mark=Mark(SubscriptionState.PARKED, reason),
        )
    if isinstance(wanted, Ignore):
        ignored = Mark(SubscriptionState.IGNORED, wanted.reason)
        return replace(writes, outcome=Outcome.IGNORED, reason=wanted.reason, mark=ignored)
    if stored is not None and stored.access_hold and wanted.state.active:
        # A refund, chargeback or void the vendor set to "cancel": nothing active is sent.
        wanted = Target(INACTIVE, f"access withheld after {stored.access_hold}")
    why = f"{wanted.why}; warning: {wanted.warning}" if wanted.warning else wanted.why
    source = (
        incoming.source if incoming is not None else (stored.billing_source if stored else None)
    )
    applied = (
        SubscriptionState.MISSING_IN_BILLING
        if source == MISSING_IN_BILLING_SOURCE
        else SubscriptionState.APPLIED
    )
    writes = replace(writes, mark=Mark(applied, why), warning=wanted.warning)
    queued = stored.queued_json if stored else None
    conflict = _conflict(
        facts, snapshot, queued=queued, acked=stored.acked_json if stored else None
    )
    if conflict is not None and wanted.state.active:
        return replace(
            writes,
            outcome=Outcome.CONFLICT,
            reason=conflict,
            mark=Mark(SubscriptionState.CONFLICT, conflict),
        )
    # States are stored as canonical JSON (sorted keys), so equal text is equal state.
    if queued == wanted.state.to_json():
        reason = "the platform already has or will get this state"
        return replace(writes, outcome=Outcome.UNCHANGED, reason=reason)
    if queued is None and not wanted.state.active:
        reason = "never sent to the platform; nothing to cancel"
        return replace(writes, outcome=Outcome.UNCHANGED, reason=reason)
    return replace(writes, reason=wanted.why, send=wanted.state)


def _conflict(
    facts: PipelineFacts, snapshot: BillingSubscription, *, queued: str | None, acked: str | None
) -> str | None:
    """Why nothing may be sent for this subscription: its org has another that bills and the
    platform keeps that one (``org_billing.keeper``). None when this one is the keeper."""
    if not facts.siblings or not bills(snapshot.status):
        return None
    created = snapshot.created_time.timestamp() if snapshot.created_time else None
    this = OrgSubscription(
        facts.subscription_id, created, platform_has=_active(queued) or _active(acked)
    )
    kept = keeper([this, *facts.siblings])
    if kept == facts.subscription_id:
        return None
    return (
        f"conflict: the organisation already has subscription {kept}, which the platform "
        f"keeps; nothing is sent for {facts.subscription_id} (a duplicate to cancel)"
    )


def _active(state_json: str | None) -> bool:
    state = PlatformState.from_json(state_json)
    return state is not None and state.active


def _not_newer(
    stored: StoredSubscription | None, incoming: Snapshot, *, settings: Settings, now: float
) -> Decision | None:
    """Why ``incoming`` must not replace the stored snapshot, as a decision; None to keep it."""
    sid = incoming.subscription.subscription_id
    deleted = BillingStatus.DELETED
    if stored and stored.status == deleted and incoming.subscription.status is not deleted:
        # Billing cannot bring a deleted subscription back; a late event must not either.
        return Decision(Outcome.STALE, f"subscription {sid} was deleted in billing", sid)
    latest_credible = now + settings.webhooks.future_tolerance_seconds
    if incoming.updated_at > latest_credible:
        # Kept, it would make every real event after it look stale (the webhook edge refuses
        # these too; this covers billing reads).
        reason = f"billing's updated_time for subscription {sid} is in the future"
        return Decision(Outcome.REFUSED, reason, sid)
    known = stored.billing_updated_at if stored else None
    # A stored time beyond belief (written before this check existed) orders nothing.
    if known is not None and known <= latest_credible and incoming.updated_at < known:
        reason = f"billing already reported a newer state of subscription {sid}"
        return Decision(Outcome.STALE, reason, sid)
    return None


def _fill_partial(stored: StoredSubscription | None, incoming: Snapshot) -> Snapshot | Decision:
    """A partial object (a list item, no plan) never replaces a stored full one: not newer, it
    changes nothing; newer, it is laid over the full one field by field (partial_snapshot)."""
    full = stored.snapshot if stored else None
    if stored is None or full is None or is_partial(full) or not is_partial(incoming.subscription):
        return incoming
    known = stored.billing_updated_at
    if known is not None and incoming.updated_at <= known:
        sid = stored.subscription_id
        reason = (
            f"a partial object of subscription {sid} (no plan: a list item) is not newer than "
            "the full one stored, which is kept"
        )
        return Decision(Outcome.UNCHANGED, reason, sid)
    return replace(incoming, subscription=merge_partial(full, incoming.subscription))


def claim_for(
    facts: PipelineFacts,
    params: LandingParams,
    *,
    verified_by: LandingVerification,
    now: float,
) -> Claim | None:
    """A verified visitor says this subscription is theirs: refused if it is another org's,
    nothing to record if it is already theirs, else the claim to record."""
    owner = facts.owner().zgid
    if owner and owner != params.zgid:
        raise Forbidden("this subscription belongs to another organisation", hint=OTHER_ORG_HINT)
    if owner:
        return None
    return Claim(
        subscription_id=facts.subscription_id,
        zgid=params.zgid,
        zuid=params.zuid,
        email=(params.email or "").strip().lower() or None,
        claimed_at=now,
        verified_by=str(verified_by) if is_verified(verified_by) else None,
    )
