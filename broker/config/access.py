"""What a pause does to the app's access.

It is the vendor's choice, and the broker must not make it for them: a pause that keeps the
app working gives the service away while billing charges nothing, and a Cancel to the platform
may remove the org's data in the app (docs/contracts.md §1 does not say it keeps it). So the pause
policy starts as "not chosen", which offers no pause on the page.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import model_validator

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


class OldPauseKey(Section):
    """Refuses the replaced ``on_pause`` key by name (``extra="forbid"`` would only say
    "extra inputs are not permitted", which does not tell the operator what to write)."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "on_pause" in data:
            raise ValueError(REPLACED_ON_PAUSE)
        return data
