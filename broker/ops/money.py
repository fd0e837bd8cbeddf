"""``/ops/money``: every refund, chargeback, voided invoice and credit note billing reported,
newest first, with what the vendor's ``[money_events]`` settings made of it. Money can leave
without the subscription changing, so the operator sees it here even when access is unchanged."""

from __future__ import annotations

from aiohttp import web

from broker.ops.support import operator_session, render
from broker.store.money_events import recent_money_events
from broker.web.appkeys import settings_key, store_key


async def money_events(request: web.Request) -> web.Response:
    session = operator_session(request)
    rows = await request.app[store_key].read(recent_money_events)
    return render(
        request,
        "ops_money.html",
        session,
        {"rows": rows, "settings": request.app[settings_key].money_events},
    )
