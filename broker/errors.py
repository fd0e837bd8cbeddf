"""The broker's error tree: every error a client can cause has a stable code and an HTTP status.

    BrokerError                      500  something of ours went wrong (never shows details)
    ├── ClientError                  400  the request is wrong; message says what and what to do
    │   ├── InvalidPayload           400
    │   ├── InvalidLanding           400
    │   ├── InvalidIdentifier        400  not a Zoho id (ids.py), refused before any use
    │   ├── Unauthenticated          401
    │   │   ├── ZapikeyRefused       401  a webhook's zapikey header is missing or wrong
    │   │   └── SignatureRefused     401  a webhook's signature is missing or wrong
    │   ├── Forbidden                403
    │   ├── NotFound                 404
    │   ├── ActionNotAllowed         409  the subscription's status does not allow it
    │   ├── BodyTimeout              408  the body did not arrive in time (logged at info)
    │   ├── ClientGone               499  the client hung up mid-body (logged at info)
    │   ├── PayloadTooLarge          413
    │   ├── UnsupportedMediaType     415
    │   └── TooManyRequests          429  slow down (retry_after says when)
    ├── StoreError                   503  the database could not be reached or written
    └── BillingError                 502  Zoho Billing did not do what we asked
        ├── BillingUnavailable       503  could not reach it, it timed out or answered 5xx
        │   └── BillingRateLimited   503  it answered 429 (retry_after says when to try)
        │       └── BillingBudgetSpent 503  the day's call budget for this kind of call is spent
        ├── BillingAuthError         502  our OAuth credentials were refused (operator must fix)
        │   └── BillingScopeMissing  502  a fresh token lacks a call's scope (.scope names it)
        └── BillingRejected          400  it said no to this request (code, message)
            └── BillingNotFound      404

Messages are written for the person reading them and must never carry a secret or ``str()`` of an
unexpected exception.
"""

from __future__ import annotations

# What an error's details may hold: JSON-able values (a list of problems), answered as they are.
ErrorDetail = str | int | float | bool | None | list[str]


class BrokerError(Exception):
    status = 500
    code = "internal_error"
    # The client's own doing, nothing for an operator to act on: logged at info, not warning.
    quiet = False
    # Answer with Connection: close (the rest of the request cannot be trusted to follow).
    closes_connection = False
    # Seconds after which trying again may work: answered as a Retry-After header.
    retry_after: float | None = None

    def __init__(self, message: str, *, hint: str | None = None, **details: ErrorDetail) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = self.details
        return body


class ClientError(BrokerError):
    status = 400
    code = "bad_request"


class InvalidPayload(ClientError):
    code = "invalid_payload"


class InvalidLanding(ClientError):
    code = "invalid_landing_parameters"


class InvalidIdentifier(ClientError):
    code = "invalid_identifier"


class Unauthenticated(ClientError):
    status = 401
    code = "unauthenticated"


class ZapikeyRefused(Unauthenticated):
    """Same answer as its parent; the class tells monitoring which check refused."""


class SignatureRefused(Unauthenticated):
    """Same answer as its parent; the class tells monitoring which check refused."""


class Forbidden(ClientError):
    status = 403
    code = "forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class ActionNotAllowed(ClientError):
    status = 409
    code = "action_not_allowed"


class BodyTimeout(ClientError):
    status = 408
    code = "body_timeout"
    quiet = True
    closes_connection = True


class ClientGone(ClientError):
    """Nobody reads this answer; the status (nginx's "client closed request") is for the log."""

    status = 499
    code = "client_disconnected"
    quiet = True
    closes_connection = True


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(ClientError):
    status = 429
    code = "too_many_requests"

    def __init__(
        self, message: str, *, retry_after: float, hint: str | None = None, **kwargs: ErrorDetail
    ) -> None:
        super().__init__(message, hint=hint, **kwargs)
        self.retry_after = max(1.0, retry_after)


class StoreError(BrokerError):
    status = 503
    code = "store_unavailable"
    retry_after = 30.0  # Zoho (or any caller) retries; a disk is seldom fixed within seconds


class BillingError(BrokerError):
    status = 502
    code = "billing_error"


class BillingUnavailable(BillingError):
    """Could not reach Zoho Billing, or it failed on its side: worth retrying later."""

    status = 503
    code = "billing_unavailable"


class BillingAnswerInvalid(BillingUnavailable):
    """Zoho Billing answered in a shape we cannot read (a field missing or of the wrong kind):
    the answer is refused whole, never passed on half-read."""

    status = 502
    code = "billing_answer_invalid"

    def __init__(
        self,
        message: str,
        *,
        problems: list[str] | None = None,
        hint: str | None = None,
        **kwargs: ErrorDetail,
    ) -> None:
        if problems is not None:
            kwargs["problems"] = problems
        super().__init__(message, hint=hint, **kwargs)
        self.problems = problems or [message]


class BillingRateLimited(BillingUnavailable):
    code = "billing_rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        hint: str | None = None,
        **kwargs: ErrorDetail,
    ) -> None:
        super().__init__(message, hint=hint, **kwargs)
        self.retry_after = retry_after


class BillingBudgetSpent(BillingRateLimited):
    """The broker did not call billing: today's budget for this kind of call is spent (or
    billing answered that its quota is). Nothing was sent, so nothing is retried."""

    code = "billing_budget_spent"


class BillingAuthError(BillingError):
    code = "billing_auth_failed"


class BillingScopeMissing(BillingAuthError):
    """The refresh token was generated without the OAuth scope a call needs."""

    code = "billing_scope_missing"

    def __init__(
        self, message: str, *, scope: str, hint: str | None = None, **kwargs: ErrorDetail
    ) -> None:
        super().__init__(message, hint=hint, scope=scope, **kwargs)
        self.scope = scope


class BillingRejected(BillingError):
    """Zoho Billing understood the request and refused it; ``zoho_code`` is its error code."""

    status = 400
    code = "billing_rejected"

    def __init__(
        self,
        message: str,
        *,
        zoho_code: int | None = None,
        hint: str | None = None,
        **kwargs: ErrorDetail,
    ) -> None:
        super().__init__(message, hint=hint, **kwargs)
        self.zoho_code = zoho_code


class BillingNotFound(BillingRejected):
    status = 404
    code = "billing_not_found"
