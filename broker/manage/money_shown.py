"""The money a confirmation page shows before a change or cancellation that skips checkout.

Reads the term, the prices and the vendor's billing rules, and asks the pure
``core.change_money`` for billing's figure; the page then says what moves, which way, and how it
adds up. When a figure cannot be worked out (billing gave no term dates, or a price we cannot
read) the page says so instead of guessing, and the customer can still confirm: billing works the
amount out itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import structlog
from aiohttp import web

from broker.config import TaxDisplay
from broker.core.catalog import Catalog
from broker.core.change_money import (
    MoneyMove,
    MoneyPreview,
    Term,
    cancel_at_term_end_money,
    cancel_now_money,
    change_money,
)
from broker.core.forms import CancelWhen
from broker.core.plan_pricing import Configuration, period_price
from broker.store.queries import SubscriptionView
from broker.web.appkeys import clock_key, settings_key

log = structlog.get_logger(__name__)

NOT_AVAILABLE = (
    "The amount cannot be worked out here: billing has not given this subscription's term or a "
    "price we can read. Billing works it out when the change is made, by the same rule."
)


@dataclass(frozen=True)
class ShownMoney:
    """A money preview as a page shows it, or why there is none (``preview`` is then None)."""

    preview: MoneyPreview | None
    currency: str
    tax: TaxDisplay
    unavailable: str | None = None

    @property
    def summary(self) -> str:
        """One sentence for the notice after the change and the audit row."""
        if self.preview is None:
            return "Billing works out any charge or credit."
        amount = f"{self.preview.amount} {self.currency}".strip()
        return {
            MoneyMove.CHARGE: f"Billing charges {amount}.",
            MoneyMove.CREDIT_NOTE: f"Billing issues a credit note of {amount}.",
            MoneyMove.REFUND: f"Billing refunds {amount}.",
            MoneyMove.NONE: "No money is charged or returned now.",
        }[self.preview.move]

    def audit(self) -> dict[str, str]:
        if self.preview is None:
            return {"money": "unavailable"}
        return {"money": str(self.preview.move), "amount": str(self.preview.amount)}


def today(request: web.Request) -> date:
    return datetime.fromtimestamp(request.app[clock_key](), UTC).date()


def change_shown(
    request: web.Request,
    current: SubscriptionView,
    catalog: Catalog,
    now: Configuration,
    wanted: Configuration,
) -> ShownMoney:
    """The money of changing ``current`` (configured as ``now``) to ``wanted`` today."""
    rules = request.app[settings_key].billing_rules
    old_price, new_price = period_price(catalog, now), period_price(catalog, wanted)
    term = term_of(current)
    if term is None or old_price is None or new_price is None:
        return _unavailable(current, rules.tax, "change")
    preview = change_money(
        rules,
        old_price=old_price,
        new_price=new_price,
        term=term,
        today=today(request),
        new_cycle=now.frequency != wanted.frequency,
    )
    return ShownMoney(preview, str(current.currency_code or ""), rules.tax)


def cancel_shown(request: web.Request, current: SubscriptionView) -> dict[CancelWhen, ShownMoney]:
    """The money of cancelling now and at the term's end, keyed by the cancel form's ``when``."""
    rules = request.app[settings_key].billing_rules
    term = term_of(current)
    currency = str(current.currency_code or "")
    if term is None:
        missing = _unavailable(current, rules.tax, "cancel")
        return {CancelWhen.NOW: missing, CancelWhen.TERM_END: missing}
    day = today(request)
    end = ShownMoney(cancel_at_term_end_money(term, day), currency, rules.tax)
    if current.amount is None:
        return {
            CancelWhen.NOW: _unavailable(current, rules.tax, "cancel"),
            CancelWhen.TERM_END: end,
        }
    now = cancel_now_money(rules, price=current.amount, term=term, today=day)
    return {CancelWhen.NOW: ShownMoney(now, currency, rules.tax), CancelWhen.TERM_END: end}


def term_of(current: SubscriptionView) -> Term | None:
    """The current term as billing gave it; None when its dates are missing or do not read."""
    try:
        return Term(
            date.fromisoformat(str(current.term_starts_at)),
            date.fromisoformat(str(current.term_ends_at)),
        )
    except ValueError:
        return None


def _unavailable(current: SubscriptionView, tax: TaxDisplay, action: str) -> ShownMoney:
    log.warning(
        "page.money_unavailable",
        action=action,
        subscription_id=current.subscription_id,
        has_term=bool(current.term_starts_at and current.term_ends_at),
        has_amount=isinstance(current.amount, Decimal),
    )
    return ShownMoney(None, str(current.currency_code or ""), tax, unavailable=NOT_AVAILABLE)
