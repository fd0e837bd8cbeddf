"""What the page's forms may say, checked before anything is sent to billing. No I/O here.

Each parser returns the checked choice as a typed record (``ChosenPlan``, ``ChosenPause``,
``ChosenCancel``) or
per-field messages, plus the raw values so a form shown again after a problem keeps everything the
user typed. A posted form reaches the parsers as text only (``Mapping[str, str]``): the page's
edge refuses a field that is not text before any parser sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from broker.core.catalog import Catalog
from broker.core.ids import is_whole_number
from broker.core.mapping import MONTHLY, YEARLY
from broker.errors import ClientError

FREQUENCIES = {"monthly": MONTHLY, "yearly": YEARLY}
MAX_USERS = 100_000
MAX_STORAGE_UNITS = 10_000
MAX_PAUSE_DAYS = 366
PLAN_FIELDS = ("planid", "frequency", "users", "storage")

T = TypeVar("T")


@dataclass(frozen=True)
class ChosenPlan:
    """A plan form that checked out against the catalog: what billing is asked for."""

    planid: str
    plan_code: str
    frequency: str  # ``core.mapping`` MONTHLY or YEARLY
    users: int
    storage: int
    storage_code: str | None  # the storage add-on sold with this frequency, if any

    def audit(self) -> dict[str, object]:
        """The choice as an audit row's detail keeps it (one key per field)."""
        return asdict(self)


@dataclass(frozen=True)
class ChosenPause:
    """A pause form that checked out: the day the subscription runs again."""

    resume_on: date


class FormNotText(ClientError):
    code = "form_not_text"


def text_pairs(posted: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    """A posted form's fields, in order and with repeats, once every one is text.

    A field posted as a file (or as bytes of another content type, which aiohttp hands over
    undecoded) is refused rather than dropped: read as missing, it would let a default stand in
    for what was sent (a cancel's ``when``, say)."""
    pairs: list[tuple[str, str]] = []
    for name, value in posted:
        if not isinstance(value, str):
            raise FormNotText(
                f"the form field {name[:64]!r} must be text, not a file or raw bytes",
                hint="send the page's own form again",
            )
        pairs.append((name, value))
    return pairs


class CancelWhen(StrEnum):
    """When a cancellation takes effect; the value is the cancel forms' word for it, and what
    the audit row and the action's name keep."""

    NOW = "now"
    TERM_END = "term_end"


@dataclass(frozen=True)
class ChosenCancel:
    """A confirmed cancel form: when the subscription ends."""

    when: CancelWhen


@dataclass
class FormResult(Generic[T]):
    values: dict[str, str]  # as typed, for showing the form again
    errors: dict[str, str] = field(default_factory=dict)
    cleaned: T | None = None  # set exactly when there are no errors

    @property
    def ok(self) -> bool:
        return not self.errors


def plan_values(form: Mapping[str, str]) -> dict[str, str]:
    """The plan form's fields as posted, untouched, for showing the form again."""
    return {k: form.get(k, "") for k in PLAN_FIELDS}


def parse_plan_form(form: Mapping[str, str], catalog: Catalog) -> FormResult[ChosenPlan]:
    values = {k: form.get(k, "").strip() for k in PLAN_FIELDS}
    result = FormResult[ChosenPlan](values)
    plan = catalog.plan(values["planid"])
    if plan is None:
        result.errors["planid"] = "Choose one of the plans listed."
    frequency = FREQUENCIES.get(values["frequency"])
    if frequency is None:
        result.errors["frequency"] = "Choose monthly or yearly billing."
    elif plan is not None and frequency not in plan.codes:
        result.errors["frequency"] = f"{plan.name} is not sold with {values['frequency']} billing."
    users = _whole_number(values["users"], low=1, high=MAX_USERS)
    if users is None:
        result.errors["users"] = f"Enter a whole number of users from 1 to {MAX_USERS:,}."
    storage = _whole_number(values["storage"] or "0", low=0, high=MAX_STORAGE_UNITS)
    if storage is None:
        result.errors["storage"] = (
            f"Enter a whole number of storage units from 0 to {MAX_STORAGE_UNITS:,}."
        )
    elif storage and frequency and frequency not in catalog.storage_codes:
        result.errors["storage"] = "Extra storage is not sold with this billing cycle."
    if result.ok:
        assert plan is not None
        assert frequency is not None
        assert users is not None
        assert storage is not None
        result.cleaned = ChosenPlan(
            planid=plan.planid,
            plan_code=plan.codes[frequency],
            frequency=frequency,
            users=users,
            storage=storage,
            storage_code=catalog.storage_codes.get(frequency),
        )
    return result


def parse_pause_form(form: Mapping[str, str], *, today: date) -> FormResult[ChosenPause]:
    values = {"resume_on": form.get("resume_on", "").strip()}
    result = FormResult[ChosenPause](values)
    try:
        resume_on = date.fromisoformat(values["resume_on"])
    except ValueError:
        result.errors["resume_on"] = "Enter the date to resume, as YYYY-MM-DD."
        return result
    if resume_on <= today:
        result.errors["resume_on"] = "The resume date must be after today."
    elif resume_on > today + timedelta(days=MAX_PAUSE_DAYS):
        result.errors["resume_on"] = f"A pause can last at most {MAX_PAUSE_DAYS} days."
    else:
        result.cleaned = ChosenPause(resume_on)
    return result


def parse_cancel_form(form: Mapping[str, str], *, default: CancelWhen) -> FormResult[ChosenCancel]:
    """A cancel goes ahead only when confirmed (``confirm=yes``) with a known ``when``; a form
    without ``when`` means ``default``, the choice the page shows ticked."""
    values = {"when": form.get("when", default.value), "confirm": form.get("confirm", "")}
    result = FormResult[ChosenCancel](values)
    when = next((w for w in CancelWhen if w.value == values["when"]), None)
    if when is None:
        result.errors["when"] = "Choose when the subscription ends."
    if values["confirm"] != "yes":
        result.errors["confirm"] = "Tick the box to confirm."
    if when is not None and result.ok:
        result.cleaned = ChosenCancel(when)
    return result


def _whole_number(text: str, *, low: int, high: int) -> int | None:
    if not is_whole_number(text, max_digits=7):  # ASCII: str.isdigit also takes "²" and "١٢"
        return None
    number = int(text)
    return number if low <= number <= high else None
