"""What an answer of the Zoho Billing API means: a result, or one of ``errors.py``'s named errors.

Pure: no I/O. Zoho wraps results in ``{code, message}`` (code 0 is success); a 401 means the
access token expired, which the client answers by refreshing it once.
"""

from __future__ import annotations

from broker.errors import BillingNotFound, BillingRateLimited, BillingRejected, BillingUnavailable


class TokenExpired(Exception):
    """A 401 on an API call: refresh the token and try again, once. ``token`` is the one the
    call carried (another call may have replaced it meanwhile)."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__("access token refused")
        self.token = token


def unsent(error: BillingUnavailable) -> BillingUnavailable:
    """Mark an error raised before the request left us (safe to retry, whatever the method)."""
    error.details["never_sent"] = True
    return error


def is_quota_answer(error: BillingRateLimited) -> bool:
    """A 429 carrying one of Zoho's quota codes: the limit will not lift within a retry."""
    return error.details.get("zoho_code") in QUOTA_CODES


def never_sent(error: BaseException) -> bool:
    return isinstance(error, BillingUnavailable) and bool(error.details.get("never_sent"))


# Zoho's codes for "too many calls" (docs/contracts.md §4, "Limits" [unsure]: public summaries
# of the API introduction name 44, 45 and 1070, without saying which limit each is).
QUOTA_CODES = frozenset({44, 45, 1070})


def envelope(status: int, body: dict[str, object], retry_after: float | None) -> dict[str, object]:
    """Turn an HTTP answer and Zoho's ``{code, message}`` into a result or a named error."""
    message = str(body.get("message") or f"HTTP {status}")[:300]
    if status == 401:
        raise TokenExpired
    code = body.get("code")
    if status == 429 or (isinstance(code, int) and code in QUOTA_CODES):
        raise BillingRateLimited(
            "Zoho Billing is rate limiting us",
            retry_after=retry_after,
            zoho_code=code if isinstance(code, int) else None,
        )
    if status >= 500:
        raise BillingUnavailable(f"Zoho Billing failed on its side (HTTP {status})")
    if status == 404:
        raise BillingNotFound(message, zoho_code=code if isinstance(code, int) else None)
    if status >= 400 or code not in (0, None):
        raise BillingRejected(message, zoho_code=code if isinstance(code, int) else None)
    return body
