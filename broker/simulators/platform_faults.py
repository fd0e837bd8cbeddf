"""The simulated Developer Console's fault script: what its next calls will suffer.

Error statuses (with a Zoho-style body and an optional Retry-After), ``{"Message": "Failure"}``
answers, slowness, calls to chosen orgs that hang until released, a dropped connection, and error
answers that echo the request URL. Set from
Python (``PlatformSimulator.fail_next`` and friends) or from another process (``/_sim/faults``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .platform_checks import check_fail_status, error_code, zoho_error


@dataclass
class FaultScript:
    """What the next calls will suffer; the simulator replaces it wholesale on reset."""

    fail_count: int = 0
    fail_status: int = 503
    fail_retry_after: float | None = None
    fail_body: dict[str, Any] | None = None
    failure_answers: int = 0
    delay: float = 0.0
    delay_methods: frozenset[str] | None = None  # None: every method is slowed
    down: bool = False
    # Calls to these orgs (every org when the set holds "*") wait, unanswered, until released.
    hung_orgs: frozenset[str] = frozenset()
    # Error answers echo the request URL (zapikey included), as some web stacks do.
    echo_url: Literal["json", "html"] | None = None

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        check_fail_status(status)
        self.fail_count = count
        self.fail_status = status
        self.fail_retry_after = retry_after
        self.fail_body = body

    def answer_failure_next(self, count: int) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        self.failure_answers = count

    def set_delay(self, seconds: float, *, methods: set[str] | None = None) -> None:
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self.delay = seconds
        self.delay_methods = frozenset(methods) if methods is not None else None

    def hangs(self, zgid: str) -> bool:
        return zgid in self.hung_orgs or "*" in self.hung_orgs

    def slows(self, method: str) -> bool:
        return self.delay > 0 and (self.delay_methods is None or method in self.delay_methods)

    def take_answer(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Consume one scripted fault, fail_next before answer_failure_next."""
        if self.fail_count > 0:
            self.fail_count -= 1
            if self.fail_body is not None:
                body = dict(self.fail_body)
            else:
                body = zoho_error(error_code(self.fail_status), "simulated platform failure")
            headers = {}
            if self.fail_retry_after is not None:
                # Whole seconds print as "2"; fractions stay so tests need not wait long.
                headers["Retry-After"] = f"{self.fail_retry_after:g}"
            return self.fail_status, body, headers
        if self.failure_answers > 0:
            self.failure_answers -= 1
            return 200, {"Message": "Failure"}, {}
        return None


class FaultsRequest(BaseModel):
    """Body of POST /_sim/faults; strict so a typo or a string count is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", strict=True)
    fail_next: int | None = Field(default=None, ge=0)
    status: int = 503
    retry_after: float | None = Field(default=None, ge=0)
    answer_failure_next: int | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0)
    down: bool | None = None

    @field_validator("status")
    @classmethod
    def _status_can_carry_a_body(cls, status: int) -> int:
        check_fail_status(status)
        return status


def read_faults_request(raw: bytes) -> FaultsRequest | str:
    """The request, or what is wrong with it in one line."""
    try:
        wanted = FaultsRequest.model_validate_json(raw)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
    if wanted.fail_next is None and wanted.model_fields_set & {"status", "retry_after"}:
        return "status and retry_after only apply together with fail_next"
    return wanted
