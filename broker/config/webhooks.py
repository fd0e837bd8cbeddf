"""``[webhooks]``: what a billing webhook must carry to be believed (docs/contracts.md §3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from broker.config.base import Section


class WebhookSettings(Section):
    # Keys accepted besides the platform zapikey, so a new key can be rolled out without downtime.
    extra_zapikeys: list[SecretStr] = Field(default_factory=list)
    # When set, X-Zoho-Webhook-Signature is required and checked (docs/contracts.md §3).
    signing_secret: SecretStr | None = None
    signature_encoding: Literal["hex", "base64"] = "hex"
    # A billing snapshot whose updated_time is further ahead of our clock than this is refused:
    # kept, it would make every later real event look stale.
    future_tolerance_seconds: float = Field(24 * 3600.0, gt=0)

    @field_validator("signing_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 12 <= len(value.get_secret_value()) <= 50:
            raise ValueError("Zoho accepts signing secrets of 12 to 50 characters")
        return value
