"""What the page says after a change about the money billing actually moved, beside the preview
the customer confirmed. Pure: the figures come in, one sentence goes out.

Billing's figure stands whenever it is known: the preview (``core.change_money``) is the broker's
own working of billing's rule, and billing may round or tax differently. Until billing reports
its figure, the page says the preview was an estimate and where the final amount will be.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from broker.core.change_money import MoneyMove


class Billed(StrEnum):
    AS_SHOWN = "as_shown"  # billing's figure equals the preview
    DIFFERS = "differs"  # billing's figure stands
    NOT_YET = "not_yet"  # billing has not reported it (yet)


# What billing sends the customer, so the page can say where the final amount will be.
_DOCUMENT = {
    MoneyMove.CHARGE: "invoice",
    MoneyMove.CREDIT_NOTE: "credit note",
    MoneyMove.REFUND: "refund",
}
_VERB = {
    MoneyMove.CHARGE: "charged",
    MoneyMove.CREDIT_NOTE: "credited",
    MoneyMove.REFUND: "refunded",
}


@dataclass(frozen=True)
class BilledMoney:
    """The preview a customer confirmed and billing's figure for it, when billing gave one."""

    move: MoneyMove
    shown: Decimal
    billed: Decimal | None
    currency: str

    @property
    def outcome(self) -> Billed:
        if self.billed is None:
            return Billed.NOT_YET
        return Billed.AS_SHOWN if self.billed == self.shown else Billed.DIFFERS

    @property
    def sentence(self) -> str:
        shown = _money(self.shown, self.currency)
        document = _DOCUMENT.get(self.move, "invoice")
        if self.billed is None:
            return (
                f"The {shown} shown was an estimate: billing has not reported its {document} "
                f"yet. The final amount is on the {document} billing sends you, and in your "
                "billing account."
            )
        billed = f"Billing {_VERB.get(self.move, 'charged')} {_money(self.billed, self.currency)}"
        if self.billed == self.shown:
            return f"{billed}, as shown."
        return f"{billed}, not the {shown} shown: billing's figure stands."


def billed_money(
    move: MoneyMove, shown: Decimal, billed: Decimal | None, currency: str
) -> BilledMoney | None:
    """What to say about a confirmed preview; None when it moved no money (nothing to check)."""
    if move is MoneyMove.NONE or shown <= 0:
        return None
    return BilledMoney(move, shown, billed, currency)


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}".strip()
