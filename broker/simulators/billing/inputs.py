"""What API callers send, as pydantic models, and the 400 answers for bodies that do not fit.

Zoho ignores keys it does not know, so the models do too; ids may come as JSON strings or numbers.
No I/O here.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from .errors import ApiError, invalid


def _id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, BeforeValidator(_id), StringConstraints(min_length=1, max_length=40)]
RedirectUrl = Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PlanInput(_Body):
    plan_code: str = Field(min_length=1)
    quantity: int | None = Field(None, ge=1)


class AddonInput(_Body):
    addon_code: str = Field(min_length=1)
    quantity: int = Field(1, ge=0)


class CustomFieldInput(_Body):
    label: str | None = None
    api_name: str | None = None
    customfield_id: Id | None = None
    value: Any = None

    @model_validator(mode="after")
    def _named(self) -> CustomFieldInput:
        if not (self.label or self.api_name or self.customfield_id):
            raise ValueError("a custom field needs a label, an api_name or a customfield_id")
        return self


class CustomerInput(_Body):
    display_name: str = Field(min_length=1, max_length=200)
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    company_name: str = ""
    custom_fields: list[CustomFieldInput] = Field(default_factory=list)


class NewSubscriptionPageInput(_Body):
    customer: CustomerInput | None = None
    customer_id: Id | None = None
    plan: PlanInput
    addons: list[AddonInput] = Field(default_factory=list)
    custom_fields: list[CustomFieldInput] = Field(default_factory=list)
    redirect_url: RedirectUrl | None = None

    @model_validator(mode="after")
    def _someone_pays(self) -> NewSubscriptionPageInput:
        if self.customer is None and self.customer_id is None:
            raise ValueError("give either customer or customer_id")
        return self


class UpdateSubscriptionPageInput(_Body):
    subscription_id: Id
    plan: PlanInput | None = None
    addons: list[AddonInput] | None = None
    redirect_url: RedirectUrl | None = None


class SubscriptionChangeInput(_Body):
    plan: PlanInput | None = None
    addons: list[AddonInput] | None = None
    end_of_term: bool = False


class PauseInput(_Body):
    pause_date: date | None = None
    resume_date: date | None = None


Model = TypeVar("Model", bound=BaseModel)


def parse_body(model: type[Model], raw: bytes, *, optional: bool = False) -> Model:
    """The JSON body as ``model``, or an ApiError naming the first field that is wrong."""
    if not raw.strip():
        if not optional:
            raise invalid("The request body must be a JSON object.")
        raw = b"{}"
    try:
        document = json.loads(raw)
    except ValueError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise invalid("The request body must be a JSON object.")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _describe(exc) from None


def _describe(exc: ValidationError) -> ApiError:
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return invalid(f"Invalid value passed for {where}: {first['msg']}")
