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
    """A custom field as the requests document it: ``label`` and ``value`` (hosted pages,
    specs/hosted-pages.yml ``custom_fields``; customers add ``index`` and ``data_type``). An
    ``api_name`` or ``customfield_id`` is not a documented request key, so it names nothing."""

    label: str = Field(min_length=1, max_length=200)
    value: Any = None


class CustomerInput(_Body):
    """The hosted page's ``customer``: the document gives it no ``custom_fields``, so any sent
    there are ignored like every unknown key (specs/hosted-pages.yml
    ``create-a-subscription-request``)."""

    display_name: str = Field(min_length=1, max_length=200)
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    company_name: str = ""


class CustomerUpdateInput(_Body):
    """``PUT /customers/{customer_id}`` (specs/customers.yml ``update-a-customer-request``:
    ``display_name`` and ``email`` required; the tax authority, also required there, only in
    Sales Tax editions)."""

    display_name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=1, max_length=200)
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    custom_fields: list[CustomFieldInput] | None = None


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
