"""``/ops/money``: every refund, chargeback, voided invoice and credit note billing reported,
newest first, with what the vendor's ``[money_events]`` settings made of it. Money can leave
without the subscription changing, so the operator sees it here even when access is unchanged."""

from __future__ import annotations

from aiohttp import web

from broker.ops.support import operator_session, paged, read_filter
from broker.store.money_events import money_events_page
from broker.web.appkeys import settings_key


async def money_events(request: web.Request) -> web.Response:
    session = operator_session(request)
    where = read_filter(request)
    return await paged(
        request,
        session,
        "ops_money.html",
        where,
        money_events_page,
        settings=request.app[settings_key].money_events,
    )
