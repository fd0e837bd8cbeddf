"""The ``{code, message}`` errors the simulated Zoho Billing answers with, and their codes.

Zoho documents only a few codes; the ones marked *ours* are stable inventions of this simulator,
so tests can tell failures apart. Clients must read ``code != 0`` as an error and show ``message``.
"""

from __future__ import annotations

from typing import Any

SUCCESS = 0
INVALID_VALUE = 4  # ours: a missing or malformed field, query parameter or body
INVALID_URL = 5  # ours: no such API route
METHOD_NOT_ALLOWED = 37  # ours: the route exists, the method does not
NOT_AUTHORIZED = 57  # Zoho: missing, unknown or expired access token (HTTP 401)
CATALOG_ITEM_MISSING = 1001  # ours: a plan or add-on code that is not in the catalog
DOES_NOT_EXIST = 1002  # Zoho: "Subscription does not exist."; ours for other ids too
ACTION_NOT_ALLOWED = 2001  # ours: the subscription's status forbids the action
ORGANIZATION_MISSING = 6041  # Zoho: organisation header missing or not this organisation
TOO_MANY_REQUESTS = 429  # the simulator's scripted rate limit
DAILY_LIMIT_EXCEEDED = 1070  # Zoho [unsure]: one of its quota codes, read as the daily one


class ApiError(Exception):
    """A refusal the API answers as ``{"code": code, "message": message}`` with HTTP ``status``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def invalid(message: str) -> ApiError:
    return ApiError(400, INVALID_VALUE, message)


def not_allowed(message: str) -> ApiError:
    return ApiError(400, ACTION_NOT_ALLOWED, message)


def does_not_exist(what: str) -> ApiError:
    return ApiError(404, DOES_NOT_EXIST, f"{what} does not exist.")
