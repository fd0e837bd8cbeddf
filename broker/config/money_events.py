"""``[money_events]``: what a refund, chargeback or voided invoice does to the app's access.

The vendor's choice, like a pause (``plans``): a Cancel to the platform may remove the org's
data in the app, so every kind starts as "record", which only tells the operator.
"""

from __future__ import annotations

from enum import StrEnum

from broker.config.base import Section


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
