"""What a pause means for the app, in the customer's words, for each ``plans.pause_policy``.

Pure data. The pause page says it before the customer confirms, the notice after, and the
overview while the subscription is paused, so nobody learns it from the app going dark.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from broker.config import PausePolicy

PAUSE_EFFECTS: Mapping[PausePolicy, str] = MappingProxyType(
    {
        PausePolicy.KEEP: "The app keeps working while your subscription is paused.",
        PausePolicy.SUSPEND: (
            "The app stops working for your organisation while your subscription is paused, "
            "and starts again when it resumes. The app may not keep your organisation's data "
            "while it is switched off."
        ),
        # Not chosen: no pause is offered, but one made in billing still shows this.
        PausePolicy.NONE: (
            "The app keeps working for now; the vendor has not said what a pause means for it."
        ),
    }
)
