"""The Manage Subscription URL's parameters (docs/contracts.md §2), read from every form they
arrive in.

The Vertical Solution may send them as query parameters or a form post, with the ids flat
(``zuid``), bracketed (``custom_fields[zuid]``), dotted (``custom_fields.zuid``) or as a JSON
``custom_fields`` object. They come from the user's browser, so they are validated strictly and
never trusted to prove who the user is on their own. No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints, ValidationError

from broker.core.billing_events import describe_validation_errors
from broker.errors import InvalidLanding

NumericId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$")]

ID_ALIASES = {
    "zuid": ("zuid", "custom_fields[zuid]", "custom_fields.zuid", "cf_zuid"),
    "zgid": ("zgid", "custom_fields[zgid]", "custom_fields.zgid", "cf_zgid"),
}
HOSTED_PAGE_ALIASES = ("hostedPageId", "hostedpage_id", "hosted_page_id", "hostedpageid")
PLAIN_FIELDS = (
    "display_name",
    "first_name",
    "last_name",
    "email",
    "company_name",
    "subscription_id",
)


class LandingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    zuid: NumericId
    zgid: NumericId
    email: EmailStr | None = None
    display_name: Name | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    company_name: Name | None = None
    subscription_id: Token | None = None
    hosted_page_id: Token | None = None

    @property
    def name(self) -> str:
        full = " ".join(p for p in (self.first_name, self.last_name) if p)
        return self.display_name or full or (self.email or f"user {self.zuid}")


START_AGAIN = "open the Manage Subscription page again from the app's Subscription menu"


def merge_landing(
    sources: Iterable[Mapping[str, str]], *, ignore: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Every form the parameters arrive in (query, form, flat, bracketed, dotted, JSON
    ``custom_fields``) merged into one value per name; a name given two values is refused.

    ``ignore`` drops plain fields the caller will not believe (Sign in with Zoho takes the
    email from the ID token, never from the browser)."""
    values: dict[str, str] = {}

    def put(name: str, value: str | None) -> None:
        value = value.strip() if isinstance(value, str) else value
        if not value:
            return
        if values.setdefault(name, value) != value:
            raise InvalidLanding(
                f"the link gives two different values for {name}", hint=START_AGAIN
            )

    for source in sources:
        for key, value in source.items():
            key, value = str(key), str(value)
            if key == "custom_fields":
                for name, nested in _json_custom_fields(value).items():
                    put(name, nested)
            for name, aliases in ID_ALIASES.items():
                if key in aliases:
                    put(name, value)
            if key in HOSTED_PAGE_ALIASES:
                put("hosted_page_id", value)
            if key in PLAIN_FIELDS and key not in ignore:
                put(key, value)
    return values


def parse_landing(sources: Iterable[Mapping[str, str]]) -> LandingParams:
    """Merge query and form parameters into validated landing parameters."""
    values = merge_landing(sources)
    try:
        return LandingParams.model_validate(values)
    except ValidationError as exc:
        raise InvalidLanding(
            "the Manage Subscription link is missing or has invalid details",
            hint="open this page from the Subscription menu of the app; if it keeps happening, "
            "tell the app vendor",
            problems=describe_validation_errors(exc),
        ) from None


# A JSON custom_fields holds two ids; anything longer is not from the app, and capping it keeps
# the parser away from deep nesting (RecursionError) and huge numbers (int conversion limit).
MAX_CUSTOM_FIELDS_CHARS = 1000


def _json_custom_fields(text: str) -> dict[str, str]:
    if len(text) > MAX_CUSTOM_FIELDS_CHARS:
        raise InvalidLanding(
            f"custom_fields is longer than {MAX_CUSTOM_FIELDS_CHARS} characters",
            hint='send custom_fields as a small JSON object such as {"zuid": "...", "zgid": "..."}',
        )
    try:
        # Integers stay text: an 18-digit id must not lose digits, and no int() limit applies.
        document = json.loads(text, parse_int=str)
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise InvalidLanding("custom_fields is not a JSON object") from None
    if not isinstance(document, dict):
        raise InvalidLanding("custom_fields is not a JSON object")
    found = {}
    for name in ("zuid", "zgid"):
        value = document.get(name, document.get(f"cf_{name}"))
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidLanding(
                f"custom_fields.{name} must be a whole number or a string of digits",
                hint="open the Manage Subscription page again from the app's Subscription menu",
            )
        found[name] = value
    return found
