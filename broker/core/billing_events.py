"""What the billing system sends, as pydantic models (docs/contracts.md §3). No I/O here.

Zoho's payloads carry far more keys than we read and vary in the JSON type of ids, so the models
accept unknown keys, keep them (for the stored snapshot) and turn every id into a string without
going through float: an 18-digit id must survive intact.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    field_serializer,
    model_validator,
)

from broker.core.billing_status import BillingStatus, UnknownStatus, parse_status, read_status
from broker.core.event_kinds import EventKind, event_kind
from broker.core.ids import IdKind, id_problem, is_zoho_id
from broker.errors import InvalidPayload


def _as_id(value: object) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a string or an integer id")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
    else:
        raise ValueError("must be a non-empty string or an integer id (not a decimal number)")
    problem = id_problem(IdKind.OPAQUE, text)
    if problem is not None:
        raise ValueError(problem)
    return text


def _as_timestamp(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 timestamp string")
    parsed = datetime.fromisoformat(value.strip())
    # Zoho always sends an offset; if one is missing we read the time as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_zoho_id(value: object) -> str:
    text = _as_id(value)
    if not is_zoho_id(text):
        # It reaches Billing API paths and platform bodies: only what Zoho ids are made of.
        raise ValueError("must be a Zoho id: ASCII digits only, at most 32 of them")
    return text


def _as_interval(value: object) -> int | None:
    """A billing interval count, or None when it is not a whole number (it only feeds a
    warning, so an odd value must not refuse the payload)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_field_hash(value: object) -> object:
    # An empty hash may arrive as [] or null (serialisers that cannot tell an empty map).
    return {} if value in (None, []) else value


def _as_optional_id(value: object) -> str | None:
    """An id billing may leave empty: an empty one is no id."""
    return None if value in (None, "") else _as_id(value)


def _as_price(value: object) -> Decimal:
    """A price as billing lists it; one that does not read as a number counts as 0, as a
    missing one does (the catalog then shows the plan free rather than no form)."""
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _as_list(value: object) -> object:
    # A list billing leaves out may arrive as null.
    return [] if value is None else value


Id = Annotated[str, BeforeValidator(_as_id)]
ZohoId = Annotated[str, BeforeValidator(_as_zoho_id)]
# Licences and add-on units: a bound keeps absurd numbers out of the platform call and SQLite.
MAX_QUANTITY = 1_000_000
# Billing's documents set no length for a code (specs/plans.yml); 100 characters is our bound.
MAX_CODE_CHARS = 100
Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY)]
Timestamp = Annotated[datetime | None, BeforeValidator(_as_timestamp)]
Interval = Annotated[int | None, BeforeValidator(_as_interval)]
OptionalId = Annotated[str | None, BeforeValidator(_as_optional_id)]
# A custom field's value is any JSON: Zoho's multi-select and lookup fields hold lists and
# objects, and a snapshot that carries one must still be accepted and stored as sent.
FieldHash = Annotated[dict[str, JsonValue], BeforeValidator(_as_field_hash)]
Price = Annotated[Decimal, PlainValidator(_as_price)]
# Zoho's subscription status, parsed once (``billing_status.parse_status``); written as its
# lower-cased text.
SubscriptionStatus = Annotated[
    BillingStatus | UnknownStatus,
    PlainValidator(parse_status),
    PlainSerializer(str, return_type=str),
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class CustomField(_Open):
    label: str | None = None
    api_name: str | None = None
    value: JsonValue = None


class BillingCustomer(_Open):
    customer_id: ZohoId | None = None
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company_name: str | None = None
    custom_fields: list[CustomField] = Field(default_factory=list)
    custom_field_hash: FieldHash = Field(default_factory=dict)


class BillingPlan(_Open):
    # Codes are the vendor's ids for plans and add-ons: bounded like every id from outside.
    plan_code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    plan_id: ZohoId | None = None
    name: str | None = None
    quantity: Quantity = 1
    product_id: Id | None = None  # docs/contracts.md §3: the billing product the plan is of


class BillingAddon(_Open):
    addon_code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    name: str | None = None
    quantity: Quantity = 0


class BillingSubscription(_Open):
    subscription_id: ZohoId
    status: SubscriptionStatus
    product_id: Id | None = None  # docs/contracts.md §3: which billing product it is of
    plan: BillingPlan | None = None
    addons: list[BillingAddon] = Field(default_factory=list)
    interval: Interval = None
    interval_unit: str | None = None
    updated_time: Timestamp = None
    created_time: Timestamp = None
    current_term_ends_at: str | None = None
    next_billing_at: str | None = None
    customer_id: ZohoId | None = None
    customer: BillingCustomer | None = None
    custom_fields: list[CustomField] = Field(default_factory=list)
    custom_field_hash: FieldHash = Field(default_factory=dict)
    # Billing's status word as sent, so the stored snapshot keeps it letter for letter.
    _status_word: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_status_word(
        cls, data: object, handler: ModelWrapValidatorHandler[BillingSubscription]
    ) -> BillingSubscription:
        subscription = handler(data)
        word = data.get("status") if isinstance(data, dict) else None
        if isinstance(word, str):
            subscription._status_word = word
        return subscription

    @field_serializer("status")
    def _status_as_sent(self, status: BillingStatus | UnknownStatus) -> str:
        """The word billing sent, unless the status was changed since (``deleted``)."""
        word = self._status_word
        return word if word is not None and read_status(word) == status else str(status)

    def effective_customer_id(self) -> str | None:
        return self.customer_id or (self.customer.customer_id if self.customer else None)

    def effective_product_id(self) -> str | None:
        """The billing product, from the subscription or else its plan."""
        return self.product_id or (self.plan.product_id if self.plan else None)


class PlanStatus(StrEnum):
    """Whether billing sells a plan or add-on; any word but ``active`` is not on sale."""

    ACTIVE = "active"
    INACTIVE = "inactive"


def _as_plan_status(value: object) -> PlanStatus:
    active = str(value).lower() == PlanStatus.ACTIVE
    return PlanStatus.ACTIVE if active else PlanStatus.INACTIVE


class CatalogPlan(_Open):
    """One item of ``GET /plans``: a plan with its price and whether it is on sale."""

    plan_code: str
    name: str | None = None
    status: Annotated[PlanStatus, PlainValidator(_as_plan_status)] = PlanStatus.ACTIVE
    recurring_price: Price = Decimal(0)
    price: Price = Decimal(0)
    product_id: OptionalId = None

    def period_price(self) -> Decimal:
        """The price per billing period: ``recurring_price`` when billing gives it, else
        ``price``."""
        return self.recurring_price if "recurring_price" in self.model_fields_set else self.price


class PriceBracket(_Open):
    price: Price = Decimal(0)


class CatalogAddon(_Open):
    """One item of ``GET /addons``: an add-on with its price (or its first price bracket's)."""

    addon_code: str
    name: str | None = None
    price: Price = Decimal(0)
    price_brackets: Annotated[list[PriceBracket], BeforeValidator(_as_list)] = Field(
        default_factory=list
    )

    def unit_price(self) -> Decimal:
        return self.price_brackets[0].price if self.price_brackets else self.price


class ListedSubscription(_Open):
    """One item of ``GET /subscriptions``: no plan object, only its ``plan_code``."""

    subscription_id: ZohoId
    status: SubscriptionStatus
    plan_code: str | None = None
    created_time: str | None = None


class EventData(_Open):
    subscription: BillingSubscription | None = None


class WebhookEvent(_Open):
    event_id: Id
    event_type: str = Field(min_length=1, max_length=100)
    created_time: Timestamp = None
    data: EventData = Field(default_factory=EventData)

    @property
    def is_subscription_event(self) -> bool:
        return event_kind(self.event_type) is EventKind.SUBSCRIPTION


def parse_webhook_event(document: object) -> WebhookEvent:
    """Validate a decoded webhook body; raise InvalidPayload naming every problem found."""
    if not isinstance(document, dict):
        raise InvalidPayload(
            "the webhook body must be a JSON object",
            hint="configure the Zoho Billing webhook with the default JSON payload",
        )
    try:
        event = WebhookEvent.model_validate(document)
    except ValidationError as exc:
        raise InvalidPayload(
            "the webhook body is not a Zoho Billing event we can read",
            hint="send the default Zoho Billing payload: event_id, event_type, data.subscription",
            problems=describe_validation_errors(exc),
        ) from None
    if event.is_subscription_event and event.data.subscription is None:
        raise InvalidPayload(
            f"{event.event_type} events must carry data.subscription",
            hint="use the default payload for subscription webhooks",
        )
    return event


def check_not_from_the_future(event: WebhookEvent, *, now: float, tolerance: float) -> None:
    """Refuse a snapshot dated beyond ``now + tolerance``: kept, it would make every real event
    after it look older, freezing the subscription. Refused (and not recorded), it can be sent
    again once the clocks agree."""
    subscription = event.data.subscription
    moment = subscription.updated_time if subscription else None
    if moment is None or moment.timestamp() <= now + tolerance:
        return
    ahead = moment.timestamp() - now
    raise InvalidPayload(
        f"updated_time is {ahead / 3600:.1f} hours ahead of this broker's clock "
        f"(at most {tolerance / 3600:g} allowed)",
        hint="check the clocks of Zoho Billing's account and of this server, then resend",
        problems=[f"data.subscription.updated_time: {moment.isoformat()} is in the future"],
    )


MAX_DEPTH = 64


def decode_json(raw: bytes) -> object:
    """Decode a JSON body, refusing what would break us later: text that is not valid Unicode
    (json.loads decodes bytes with 'surrogatepass', so a raw lone surrogate would slip through
    and fail only when stored), deep nesting, lone surrogate escapes."""
    try:
        # The encoding json.loads would pick (UTF-8 for Zoho), but strict: no surrogates.
        encoding = json.detect_encoding(raw)
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        name = encoding.upper().removesuffix("-SIG")
        raise InvalidPayload(
            f"the body is not valid {name} JSON: the bytes at position {exc.start} cannot be "
            "decoded (a byte that is not UTF-8, or a lone surrogate)",
            hint="send Content-Type: application/json with a UTF-8 JSON object",
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPayload(
            f"the body is not valid JSON (JSONDecodeError at position {exc.pos})",
            hint="send Content-Type: application/json with a UTF-8 JSON object",
        ) from None
    except RecursionError:
        raise InvalidPayload(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise InvalidPayload(f"the JSON cannot be read: {str(exc)[:120]}") from None
    if isinstance(document, dict | list):
        _check_document(document, text)
    elif isinstance(document, str):
        _check_encodable(document)
    return document


# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): only these can make a string unstorable
# once the text itself is known to be valid Unicode.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _check_document(document: dict[str, object] | list[object], text: str) -> None:
    """Bounded depth (containers only, no recursion) and, when the raw text escapes a
    surrogate, strings that UTF-8 can hold."""
    stack: list[tuple[dict[str, object] | list[object], int]] = [(document, 1)]
    check_strings = _SURROGATE_ESCAPE.search(text) is not None
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidPayload(f"the JSON is nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        if check_strings and isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif check_strings and isinstance(child, str):
                _check_encodable(child)


def _check_encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload(
            "the JSON holds a string that is not valid Unicode (a lone surrogate escape)"
        ) from None


def describe_validation_errors(exc: ValidationError, limit: int = 10) -> list[str]:
    """Render pydantic errors as 'path: message' lines a vendor can act on (no input echoed)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        path = ".".join(str(part) for part in error["loc"]) or "(body)"
        lines.append(f"{path}: {error['msg']}")
    return lines
