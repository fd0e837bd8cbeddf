"""What ``GET /hostedpages/{id}`` says about a checkout, read once into a typed answer (pure).

Zoho documents the answer flat: ``hostedpage_id``, ``status`` and ``data.subscription`` at the
top level (specs/hosted-pages.yml, ``retrieve-a-hosted-page-response``); the ``hostedpage``
wrapper its create calls answer with is tolerated here too. Its status words (``fresh``,
``read``, ``success``, ``failed``, ``cancelled``, ``force_cancelled``) are mapped to
``CheckoutStatus`` here and nowhere else, so the return page never compares Zoho's strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class CheckoutStatus(StrEnum):
    """Where a checkout stands; the value is what the checkouts table and audit keep."""

    OPEN = "open"  # not paid yet: the buyer may still finish it
    PAID = "success"
    FAILED = "failure"  # the payment was declined
    CANCELLED = "cancelled"  # the buyer, or billing, cancelled it
    EXPIRED = "expired"  # billing no longer knows the page
    UNKNOWN = "unknown"  # a word billing does not document: treated as not finished


# Documented words [doc], and the ones an older reading of the API used [unsure], kept so a
# page billing answers in either vocabulary is understood.
STATUS_WORDS: dict[str, CheckoutStatus] = {
    "fresh": CheckoutStatus.OPEN,
    "read": CheckoutStatus.OPEN,
    "success": CheckoutStatus.PAID,
    "failed": CheckoutStatus.FAILED,
    "cancelled": CheckoutStatus.CANCELLED,
    "force_cancelled": CheckoutStatus.CANCELLED,
    "created": CheckoutStatus.OPEN,
    "failure": CheckoutStatus.FAILED,
    "expired": CheckoutStatus.EXPIRED,
}


@dataclass(frozen=True)
class HostedPage:
    """A hosted page as billing reports it."""

    status: CheckoutStatus
    status_word: str  # billing's own word, cut short, for logs
    subscription: dict[str, object] | None = None  # set once paid, as billing sent it
    url: str | None = None  # where the buyer can continue an open checkout
    hostedpage_id: str | None = None  # billing's id of the page, to read it back


def checkout_status(word: object) -> CheckoutStatus:
    return STATUS_WORDS.get(str(word or "").strip().lower(), CheckoutStatus.UNKNOWN)


def read_hosted_page(body: Mapping[str, object]) -> HostedPage:
    """Read the answer flat as documented, or inside a ``hostedpage`` wrapper."""
    wrapped = body.get("hostedpage")
    page = wrapped if isinstance(wrapped, dict) and "status" not in body else body
    data = page.get("data")
    subscription = data.get("subscription") if isinstance(data, dict) else None
    url = page.get("url")
    page_id = page.get("hostedpage_id")
    return HostedPage(
        status=checkout_status(page.get("status")),
        status_word=str(page.get("status") or "")[:40],
        subscription=subscription if isinstance(subscription, dict) and subscription else None,
        url=url if isinstance(url, str) and _web_address(url) else None,
        hostedpage_id=str(page_id) if isinstance(page_id, str | int) and page_id else None,
    )


def _web_address(url: object) -> bool:
    """Only an http(s) address becomes a link: never ``javascript:`` or the like."""
    return isinstance(url, str) and url.lower().startswith(("https://", "http://"))
