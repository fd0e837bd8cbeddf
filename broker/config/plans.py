"""``[plans]``: the add-ons the plans carry, and what a pause and an unpaid subscription mean
for the app.

What a pause does is the vendor's choice, and the broker must not make it for them: a pause
that keeps the app working gives the service away while billing charges nothing, and a Cancel to
the platform may remove the org's data in the app (docs/contracts.md §1 does not say it keeps
it). So the pause policy starts as "not chosen", which offers no pause on the page.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from broker.config.base import Section


class PausePolicy(StrEnum):
    """``plans.pause_policy``: what a pause means for the app on the Developer Console."""

    # Not chosen: the page offers no pause; a pause made in billing is recorded, shown, and
    # reported to the operator, and the platform is not called.
    NONE = "none"
    # The app keeps working while billing charges nothing: no platform call at pause or resume.
    KEEP = "keep"
    # A Cancel to the platform at pause and an Add at resume, the only calls it has. A Cancel
    # may remove the org's data in the app: the contract does not say that it is kept.
    SUSPEND = "suspend"


REPLACED_ON_PAUSE = (
    'plans.on_pause was replaced by plans.pause_policy ("none", "keep" or "suspend"): '
    'on_pause = "keep" is now pause_policy = "keep" (the app keeps working while paused), '
    'on_pause = "cancel" is pause_policy = "suspend" (Cancel at pause, Add at resume; the app '
    "may remove the org's data). Rename the key."
)


class PlansSettings(Section):
    storage_addon_monthly: str | None = None
    storage_addon_yearly: str | None = None
    # Other add-on codes -> keys of custom_pricing_json (for example licence types).
    addon_pricing_keys: dict[str, str] = Field(default_factory=dict)
    # What a pause means for the app (PausePolicy above): "none" (not chosen: no pause is
    # offered on the page), "keep" (the app keeps working, no platform call) or "suspend" (Cancel
    # at pause, Add at resume; the app may remove the org's data on a Cancel).
    pause_policy: PausePolicy = PausePolicy.NONE
    # After dunning, Zoho may leave a subscription "unpaid"; the vendor decides what that means.
    on_unpaid: Literal["keep", "cancel"] = "keep"

    @model_validator(mode="before")
    @classmethod
    def _on_pause_was_renamed(cls, data: object) -> object:
        """Refuse the replaced ``on_pause`` key by name (``extra="forbid"`` would only say
        "extra inputs are not permitted", which does not tell the operator what to write)."""
        if isinstance(data, dict) and "on_pause" in data:
            raise ValueError(REPLACED_ON_PAUSE)
        return data
