"""What a pause and a money event (refund, chargeback, voided invoice) do to the app's access.

Both are the vendor's choice, and the broker must not make it for them: a pause that keeps the
app working gives the service away while billing charges nothing, and a Cancel to the platform
may remove the org's data in the app (docs/contracts.md §1 does not say it keeps it). So the pause
policy starts as "not chosen", which offers no pause on the page, and money events start as
"record", which only tells the operator.
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


class MoneyAction(StrEnum):
    """What one kind of money event does to access."""

    RECORD = "record"  # stored, listed in /ops and counted; access unchanged
    CANCEL = "cancel"  # also withhold access: a Cancel to the platform through the pipeline


class MoneyEventSettings(Section):
    """``[money_events]``: each kind of money event and what it does to access.

    A refund withholds access only when it is a full refund of the invoice (a partial refund is
    goodwill, not a reversal of the sale); a chargeback and a voided invoice always do when set
    to ``cancel``. Credit notes are only recorded: billing issues them for pauses and downgrades.
    Access withheld comes back with the next event in which billing reports a new term (a
    renewal, reactivation or activation).
    """

    on_refund: MoneyAction = MoneyAction.RECORD
    on_chargeback: MoneyAction = MoneyAction.RECORD
    on_invoice_voided: MoneyAction = MoneyAction.RECORD


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
