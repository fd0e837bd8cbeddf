"""Sign in with Zoho's binding evidence in the database: binding requests an operator decides,
and whether billing's copy of a customer vouches for a (zgid, verified email) pair.

Which evidence wins is decided in ``core.zgid_evidence``, never here. An operator's decision is
audited in the same transaction as the change. Functions run inside store transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from broker.core.zgid_evidence import BindingRequest, BindingRequestStatus, EvidenceFacts
from broker.store.engine.tx import Tx
from broker.store.identity import columns, user_row
from broker.store.ops_actions import Operator, OpsRefused, audit
from broker.store.sql import as_record, select_all, select_one, upsert

MAX_LISTED = 200


def binding_request(db: Tx, zuid: str) -> BindingRequest | None:
    row = select_one(
        db,
        f"SELECT {columns(BindingRequest)} FROM binding_requests WHERE zuid = ?",  # noqa: S608
        [zuid],
    )
    return as_record(BindingRequest, row) if row is not None else None


def ask_for_binding(db: Tx, request: BindingRequest) -> BindingRequest:
    """Record that this user asks to join ``request.zgid``. One request per user: a new zgid
    replaces the old request (pending or refused); asking again for the same zgid keeps its
    decision, so a refused user cannot re-open it by signing in again."""
    existing = binding_request(db, request.zuid)
    if existing is not None and existing.zgid == request.zgid:
        return existing
    upsert(db, "binding_requests", asdict(request), key="zuid")
    return request


def pending_requests(db: Tx) -> list[BindingRequest]:
    rows = select_all(
        db,
        f"SELECT {columns(BindingRequest)} FROM binding_requests"  # noqa: S608
        " WHERE status = ? ORDER BY requested_at, zuid LIMIT ?",
        [BindingRequestStatus.PENDING.value, MAX_LISTED],
    )
    return [as_record(BindingRequest, row) for row in rows]


def decide_request(
    db: Tx, who: Operator, zuid: str, *, zgid: str, approve: bool, now: float
) -> BindingRequest:
    """Approve or refuse a pending request for exactly this (zuid, zgid), audited. The zgid is
    checked so that a request replaced after the page was shown is not decided blind."""
    existing = binding_request(db, zuid)
    if existing is None:
        raise LookupError(f"no binding request from user {zuid}")
    if existing.zgid != zgid or existing.status != BindingRequestStatus.PENDING:
        raise OpsRefused(
            f"user {zuid}'s request is now for org {existing.zgid} ({existing.status}): "
            "reload the list and decide again"
        )
    status = BindingRequestStatus.APPROVED if approve else BindingRequestStatus.REFUSED
    db.execute(
        "UPDATE binding_requests SET status = ?, decided_by = ?, decided_at = ? WHERE zuid = ?",
        [status.value, who.name, now, zuid],
    )
    audit(
        db,
        who,
        "ops.approve_binding" if approve else "ops.refuse_binding",
        status.value,
        now=now,
        detail={"zuid": zuid, "zgid": zgid, "email": existing.email},
    )
    decided = binding_request(db, zuid)
    assert decided is not None
    return decided


def customer_vouches(db: Tx, zgid: str, email: str | None) -> bool:
    """Billing's copy of a customer carries this ``cf_zgid`` and this (verified) email."""
    if not email:
        return False
    row = select_one(
        db,
        "SELECT 1 AS found FROM customers WHERE zgid = ? AND lower(email) = ?",
        [zgid, email.strip().lower()],
    )
    return row is not None


def org_is_known(db: Tx, zgid: str) -> bool:
    """The broker knows a subscription or a billing customer of this org."""
    for table in ("subscriptions", "customers"):
        row = select_one(db, f"SELECT 1 AS found FROM {table} WHERE zgid = ?", [zgid])  # noqa: S608
        if row is not None:
            return True
    return False


def evidence_facts(
    db: Tx, *, zuid: str, zgid: str, email: str | None, org_zgid: str | None
) -> EvidenceFacts:
    """Everything the database knows about whether ``zuid`` belongs to ``zgid``."""
    return EvidenceFacts(
        zgid=zgid,
        org_zgid=org_zgid,
        binding=user_row(db, zuid),
        request=binding_request(db, zuid),
        billing_customer_matches=customer_vouches(db, zgid, email),
    )


def erase_binding_requests(db: Tx, zgids: Sequence[str]) -> int:
    """Erasure: every request to join these orgs."""
    if not zgids:
        return 0
    marks = ", ".join("?" * len(zgids))
    return db.execute(
        f"DELETE FROM binding_requests WHERE zgid IN ({marks})",  # noqa: S608
        list(zgids),
    ).rowcount
