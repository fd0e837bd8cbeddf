"""What the broker sends Zoho Billing, as typed request bodies (docs/contracts.md §4). No I/O.

Each model names only the parameters Zoho documents for its call and that the broker sets, and
forbids any other, so a parameter unknown to us is never sent; ``body`` drops the unset ones.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from broker.core.billing_events import MAX_QUANTITY


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def body(self) -> dict[str, object]:
        """The JSON body to send: only what is set."""
        return self.model_dump(mode="json", exclude_none=True)


class PlanLine(_Body):
    plan_code: str = Field(min_length=1)
    quantity: int = Field(ge=0, le=MAX_QUANTITY)


class AddonLine(_Body):
    addon_code: str = Field(min_length=1)
    quantity: int = Field(ge=0, le=MAX_QUANTITY)


class CustomFieldValue(_Body):
    """A custom field as the documents name one in a request: its label and value."""

    label: str
    value: str


class NewCustomer(_Body):
    """The billing customer a new-subscription checkout creates."""

    display_name: str
    company_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class NewSubscriptionPage(_Body):
    """``POST /hostedpages/newsubscription``: an existing customer or a new one."""

    plan: PlanLine
    addons: list[AddonLine] = Field(default_factory=list)
    custom_fields: list[CustomFieldValue] = Field(default_factory=list)
    redirect_url: str
    customer_id: str | None = None
    customer: NewCustomer | None = None


class UpdateSubscriptionPage(_Body):
    """``POST /hostedpages/updatesubscription``: a plan change paid on billing's page."""

    subscription_id: str
    plan: PlanLine
    addons: list[AddonLine] = Field(default_factory=list)
    redirect_url: str


class SubscriptionUpdate(_Body):
    """``PUT /subscriptions/{id}``: a plan change billing applies at once."""

    plan: PlanLine
    addons: list[AddonLine] = Field(default_factory=list)
    end_of_term: bool = False


class PauseRequest(_Body):
    """``POST /subscriptions/{id}/pause``: ISO dates, from the pause day (billing's today when
    unset) until the resume day."""

    pause_date: str | None = None
    resume_date: str


class CustomerUpdate(_Body):
    """``PUT /customers/{id}``: ``display_name`` and ``email`` are required there."""

    display_name: str
    email: str
    custom_fields: list[CustomFieldValue] = Field(default_factory=list)
