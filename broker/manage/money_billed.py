"""Billing's own figure for the money of the last change or cancellation made on the page, beside
the preview the customer confirmed (``core.billed_money`` words it).

Billing's answer to ``PUT /subscriptions/{id}`` and ``.../cancel`` carries no amount, only
``child_invoice_id`` (docs/contracts.md §4.2); the credit note or refund that follows is
reported by its money webhook, which ``store.money_events`` has recorded. So this module reads
the audit row of the action (the preview) and the money event billing sent after it; it never
calls billing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import structlog
from aiohttp import web

from broker.core.billed_money import BilledMoney, billed_money
from broker.core.change_money import MoneyMove
from broker.core.money_events import MoneyKind
from broker.store.audit import ConfirmedMoney, last_confirmed_money
from broker.store.engine.tx import Tx
from broker.store.money_events import MoneyRow, billed_since
from broker.store.queries import SubscriptionView
from broker.web.appkeys import store_key

log = structlog.get_logger(__name__)

# Page actions whose preview billing's money event can confirm.
CONFIRMED_ACTIONS = ("change", "cancel_now")
# Billing sends its webhook while it answers the call, so it may overtake our audit row.
OVERTAKE_SECONDS = 60.0
_KIND = {MoneyMove.CREDIT_NOTE: MoneyKind.CREDIT_NOTE, MoneyMove.REFUND: MoneyKind.REFUND}


async def billed_for(request: web.Request, current: SubscriptionView | None) -> BilledMoney | None:
    """What billing moved for the last change or cancellation of ``current`` made in this term;
    None when there was none, it moved no money, or its preview cannot be read."""
    if current is None:
        return None
    sid = current.subscription_id
    found = await request.app[store_key].read(lambda db: _read(db, sid))
    if found is None:
        return None
    confirmed, billed_row = found
    if not _in_term(confirmed.at, current.term_starts_at):
        return None
    try:
        move = MoneyMove(confirmed.move)
        shown = Decimal(confirmed.amount)
        billed = (
            None if billed_row is None or billed_row.amount is None else Decimal(billed_row.amount)
        )
    except (ValueError, InvalidOperation):
        log.warning("page.billed_money_unreadable", subscription_id=sid, action=confirmed.action)
        return None
    return billed_money(move, shown, billed, str(current.currency_code or ""))


def _read(db: Tx, subscription_id: str) -> tuple[ConfirmedMoney, MoneyRow | None] | None:
    confirmed = last_confirmed_money(db, subscription_id, CONFIRMED_ACTIONS)
    if confirmed is None:
        return None
    kind = _KIND.get(MoneyMove(confirmed.move)) if confirmed.move in set(MoneyMove) else None
    if kind is None:  # a charge: its invoice is not read back
        return confirmed, None
    return confirmed, billed_since(db, subscription_id, kind, confirmed.at - OVERTAKE_SECONDS)


def _in_term(at: float, term_starts_at: str | None) -> bool:
    """The action was made in the subscription's current term (an old one's money is history)."""
    try:
        starts = date.fromisoformat(str(term_starts_at))
    except ValueError:
        return True
    return datetime.fromtimestamp(at, UTC).date() >= starts
