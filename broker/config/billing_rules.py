"""The ``[billing_rules]`` section: the vendor's Zoho Billing preferences that decide what a
change or a cancellation does to money, which the broker cannot read from billing's API.

The Manage Subscription page shows the money of a change before it moves; it can only be right if
these mirror the vendor's own billing settings (docs/contracts.md §4.2 names each preference, its
documented default and where to find it). They are stated once here and read by the pure
``core.change_money``.
"""

from __future__ import annotations

from enum import StrEnum

from broker.config.base import Section


class UnusedAmount(StrEnum):
    """What billing does with the paid, unused part of a term that a change or cancel frees."""

    CREDIT_NOTE = "credit_note"  # a credit note, applied to the customer's next invoices
    REFUND = "refund"  # paid back to the card or account the customer paid with
    NONE = "none"  # kept: nothing is returned


class TaxDisplay(StrEnum):
    """Whether the catalog's prices already include tax (billing adds none) or not."""

    EXCLUSIVE = "exclusive"
    INCLUSIVE = "inclusive"


class BillingRulesSettings(Section):
    """Mirrors of Zoho Billing preferences (Settings > Subscriptions > General, and the tax
    preference); every default is Zoho's documented behaviour or, where none is documented, the
    one that promises the customer least."""

    # Proration on plan and quantity changes: charge and credit by the days left in the term.
    # [doc] Zoho Billing help (Settings > Subscriptions > Proration) documents the switch and its
    # worked examples with it on; its default for a new organisation is [unsure].
    prorate_changes: bool = True
    # What a downgrade's unused amount becomes. [doc] Zoho's proration examples issue a credit
    # note for the unused part of the old plan.
    downgrade_returns: UnusedAmount = UnusedAmount.CREDIT_NOTE
    # What cancelling now returns of a paid term. [unsure] no Zoho document says: nothing.
    cancel_now_returns: UnusedAmount = UnusedAmount.NONE
    # Whether the catalog's prices include tax. [unsure] Zoho leaves it to the vendor's tax
    # preference: prices are shown as before tax unless this says they include it.
    tax: TaxDisplay = TaxDisplay.EXCLUSIVE
