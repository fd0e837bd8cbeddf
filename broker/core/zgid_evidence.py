"""What proves that a signed-in Zoho user belongs to the org (zgid) they name, decided without I/O.

In Sign in with Zoho mode the token proves the zuid and the email, never the org: a zgid the
browser names is only a question. It is believed with one of these answers, strongest first:

- ``ORG_API``: Zoho's Organization API, read with the user's own access token, reports it;
- ``OPERATOR``: an operator approved this user's binding request in ``/ops``;
- ``SIGNED_LINK``: the user's binding came from a link the vendor signed;
- ``BILLING_CUSTOMER``: billing holds a customer with this ``cf_zgid`` and the user's *verified*
  email;
- the user's own earlier binding to the same zgid, made with one of the above (it keeps the
  evidence it was made with).

A new org (the broker knows no subscription of it) may buy only with ``ORG_API``, ``OPERATOR``
or ``SIGNED_LINK``: a billing customer cannot exist for it, and nothing weaker may start one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from broker.config import LandingVerification
from broker.core.identity import UserRecord
from broker.errors import Forbidden


class OrgNotProven(Forbidden):
    """Nothing proves the org the visit names: the page shows nothing of it."""

    code = "org_not_proven"


class ZgidEvidence(StrEnum):
    ORG_API = "org_api"
    OPERATOR = "operator"
    SIGNED_LINK = "signed_link"
    BILLING_CUSTOMER = "billing_customer"


# Enough to open a new org's first subscription (docs/customer-page.md, "Sign in with Zoho").
MAY_START_AN_ORG = frozenset(
    {ZgidEvidence.ORG_API, ZgidEvidence.OPERATOR, ZgidEvidence.SIGNED_LINK}
)


class BindingRequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


@dataclass(frozen=True)
class BindingRequest:
    """A signed-in user asked to be bound to an org nothing proved; an operator decides."""

    zuid: str
    zgid: str
    email: str | None
    display_name: str | None
    requested_at: float
    status: str
    decided_by: str | None = None
    decided_at: float | None = None


@dataclass(frozen=True)
class EvidenceFacts:
    """What the broker found about one (zuid, zgid) question, gathered by the caller."""

    zgid: str
    org_zgid: str | None  # what Zoho's Organization API said, if it was read and answered
    binding: UserRecord | None  # the user's own row
    request: BindingRequest | None  # the user's binding request, if any
    billing_customer_matches: bool  # a customer with this cf_zgid and the verified email


def binding_evidence(binding: UserRecord | None) -> ZgidEvidence | None:
    """The evidence a stored binding was made with. A zoho-mode binding from before evidence
    was recorded has none (the browser named its zgid); a signed one is the vendor's word."""
    if binding is None:
        return None
    if binding.zgid_evidence:
        try:
            return ZgidEvidence(binding.zgid_evidence)
        except ValueError:
            return None
    if binding.verified_by == LandingVerification.SIGNED:
        return ZgidEvidence.SIGNED_LINK
    return None


def zgid_evidence(facts: EvidenceFacts) -> ZgidEvidence | None:
    """The strongest evidence that the user belongs to ``facts.zgid``, or None."""
    if facts.org_zgid is not None and facts.org_zgid == facts.zgid:
        return ZgidEvidence.ORG_API
    request = facts.request
    if (
        request is not None
        and request.zgid == facts.zgid
        and request.status == BindingRequestStatus.APPROVED
    ):
        return ZgidEvidence.OPERATOR
    binding = facts.binding
    kept = binding_evidence(binding) if binding and binding.zgid == facts.zgid else None
    if kept in (ZgidEvidence.OPERATOR, ZgidEvidence.SIGNED_LINK, ZgidEvidence.ORG_API):
        return kept
    if facts.billing_customer_matches:
        return ZgidEvidence.BILLING_CUSTOMER
    return kept


def may_start_an_org(evidence: ZgidEvidence | None) -> bool:
    return evidence in MAY_START_AN_ORG
