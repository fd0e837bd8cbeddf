"""``[platform]``: the Developer Console the broker calls (docs/contracts.md §1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from broker.config.base import Section, http_url


class PlatformSettings(Section):
    app_domain: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    zapikey: SecretStr
    base_url: str | None = None
    # The app's billing product (docs/contracts.md §3/§4): a subscription of it whose plan code
    # does not map is "unmapped_plan", one of another product "ignored". Unset, the broker learns
    # it from billing's plans for the mapped plan codes.
    product_id: str | None = Field(None, pattern=r"^[0-9]{1,32}$")
    request_timeout_seconds: float = Field(15.0, gt=0)
    # docs/contracts.md §1 is unsure whether custom_pricing_json is an object or a JSON string.
    custom_pricing_format: Literal["object", "string"] = "object"
    # docs/contracts.md §1 does not say which no_of_users the platform accepts. A subscription
    # whose plan quantity is below this is parked with the reason (never sent), so a quantity
    # of 0 waits for the operator instead of ending as a refused call, a dead letter. 0 sends
    # every quantity as billing has it.
    min_users: int = Field(1, ge=0)
    # How the platform refuses a Cancel of a subscription it no longer holds is unknown
    # (docs/contracts.md §1): a repeated Cancel counts as done only on these statuses, or on a
    # 2xx/4xx body whose message, code or details string IS one of these phrases, whole (case,
    # _ -, surrounding spaces and a final full stop ignored; never a phrase inside a longer
    # message). 401 and 403 never count. See core.platform_answers.means_already_gone.
    cancel_gone_statuses: list[int] = Field(default_factory=lambda: [404, 410])
    cancel_gone_markers: list[str] = Field(
        default_factory=lambda: [
            "subscription not found",
            "subscription does not exist",
            "no such subscription",
            "no active subscription",
            "no subscription",
            "already cancelled",
            "already canceled",
            "subscription already cancelled",
            "subscription already canceled",
        ]
    )

    @field_validator("zapikey")
    @classmethod
    def _zapikey_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or f"https://{self.app_domain}.zohoplatform.com"
