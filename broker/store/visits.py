"""A Manage Subscription visit through the pipeline: the user is remembered, and a verified
visit releases what waited for that user's zgid and may claim the subscription it names.

Kept apart from ``pipeline`` (webhooks and billing reads); it runs the same load, decide and
write steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import LandingVerification, Settings
from broker.core.decide import Outcome, claim_for, decide
from broker.core.identity import bind_user, is_verified
from broker.core.landing import LandingParams
from broker.store.engine.tx import Tx
from broker.store.identity import save_claim, save_user, user_row, waiting_for_zgid
from broker.store.pipeline import PipelineResult, decide_again, load_facts, write


@dataclass(frozen=True)
class VisitResult:
    """What a Manage Subscription visit changed: the subscription it named, if any, and the
    parked subscriptions its verified zuid -> zgid binding released."""

    named: PipelineResult | None
    released: tuple[PipelineResult, ...] = ()

    @property
    def queued(self) -> bool:
        return any(r.queued for r in (self.named, *self.released) if r is not None)

    @property
    def outcome(self) -> Outcome:
        return self.named.outcome if self.named else Outcome.NO_SUBSCRIPTION_NAMED


def record_landing_visit(
    db: Tx,
    params: LandingParams,
    *,
    settings: Settings,
    now: float,
    verified_by: LandingVerification,
    zgid_evidence: str | None = None,
) -> VisitResult:
    """A Manage Subscription visit: remember the user; if verified, release what waited for
    this user's zgid and let a named subscription be claimed. Unverified visits do neither."""
    existing = user_row(db, params.zuid)
    save_user(db, bind_user(existing, params, verified_by, now, zgid_evidence))
    if not is_verified(verified_by):
        return VisitResult(None)
    cause = f"landing:{params.zuid}"
    released = tuple(
        decide_again(db, subscription_id, settings=settings, now=now, cause=cause)
        for subscription_id in waiting_for_zgid(db, params.zuid)
    )
    if not params.subscription_id:
        return VisitResult(None, released)
    facts = load_facts(db, params.subscription_id)
    claim = claim_for(facts, params, verified_by=verified_by, now=now)
    if claim is not None:
        facts = facts.with_claim(claim)
    decision = decide(facts, None, settings=settings, now=now, cause=cause)
    if claim is not None:
        save_claim(db, claim)
    return VisitResult(write(db, decision, now=now), released)
