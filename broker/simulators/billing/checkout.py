"""What a buyer's browser sees of a hosted page: the order, "Pay now" and "Simulate a failed
payment" (buttons ``#pay`` and ``#fail``), then a 303 back to the vendor's ``redirect_url`` with
``hostedpage_id`` added. A page that expired or was already used shows why, with status 410.

Standalone HTML, no external assets; every value is escaped.
"""

from __future__ import annotations

from html import escape

from aiohttp import web
from yarl import URL

from .catalog import money
from .errors import ApiError
from .lifecycle import BillingState, PageClosed
from .records import HostedPage

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;color:#222}"
    "table{width:100%;border-collapse:collapse}td{padding:.3rem 0}td.n{text-align:right}"
    "tr.total td{border-top:1px solid #999;font-weight:bold}"
    "form{display:inline-block;margin:1.5rem 1rem 0 0}"
    "button{font-size:1rem;padding:.5rem 1rem;border-radius:4px;border:1px solid #555}"
    "#pay{background:#1a7f37;color:#fff;border-color:#1a7f37}"
)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _row(label: str, amount: float, css: str = "") -> str:
    return f'<tr class="{css}"><td>{escape(label)}</td><td class="n">${amount:,.2f}</td></tr>'


def checkout_html(page: HostedPage, buyer: str) -> str:
    order = page.order
    plan = order.plan
    every = "year" if plan.interval_unit == "years" else "month"
    rows = [_row(f"{plan.name} x {order.quantity}", money(plan.recurring_price * order.quantity))]
    rows += [_row(f"{a.addon.name} x {a.quantity}", money(a.total)) for a in order.addons]
    rows.append(_row(f"Total per {every}", money(order.amount), "total"))
    if plan.trial_period:
        rows.append(f"<tr><td colspan=2>Free for {plan.trial_period} days</td></tr>")
    heading = "Subscribe" if page.action == "new_subscription" else "Change your subscription"
    base = f"/hostedpages/{escape(page.hostedpage_id)}"
    forms = (
        f'<form method="post" action="{base}/pay">'
        '<button type="submit" id="pay">Pay now</button></form>'
        f'<form method="post" action="{base}/fail">'
        '<button type="submit" id="fail">Simulate a failed payment</button></form>'
        f'<form method="post" action="{base}/cancel">'
        '<button type="submit" id="cancel">Cancel</button></form>'
    )
    intro = f"<p>For {escape(buyer)}</p>"
    return _document(heading, f"{intro}<table>{''.join(rows)}</table>{forms}")


def message_html(title: str, text: str) -> str:
    return _document(title, f"<p>{escape(text)}</p>")


class Checkout:
    def __init__(self, state: BillingState) -> None:
        self._state = state

    def register(self, app: web.Application) -> None:
        app.router.add_get("/hostedpages/{id}/checkout", self._show)
        app.router.add_post("/hostedpages/{id}/pay", self._pay)
        app.router.add_post("/hostedpages/{id}/fail", self._fail)
        app.router.add_post("/hostedpages/{id}/cancel", self._cancel)

    async def _show(self, request: web.Request) -> web.Response:
        try:
            page = self._state.view_page(request.match_info["id"])
        except (ApiError, PageClosed) as exc:
            return self._closed(exc)
        return web.Response(text=checkout_html(page, self._buyer(page)), content_type="text/html")

    def _buyer(self, page: HostedPage) -> str:
        order = page.order
        if order.new_customer is not None:
            return order.new_customer.display_name
        if order.customer_id is not None:
            return self._state.customer(order.customer_id).display_name
        assert order.subscription_id is not None
        return self._state.subscription(order.subscription_id).customer.display_name

    async def _pay(self, request: web.Request) -> web.Response:
        try:
            page = self._state.pay(request.match_info["id"])
        except (ApiError, PageClosed) as exc:
            return self._closed(exc)
        return self._back(page, "Payment received", "Your subscription is ready.")

    async def _fail(self, request: web.Request) -> web.Response:
        try:
            page = self._state.fail(request.match_info["id"])
        except (ApiError, PageClosed) as exc:
            return self._closed(exc)
        return self._back(page, "Payment failed", "The payment was declined.")

    async def _cancel(self, request: web.Request) -> web.Response:
        try:
            page = self._state.cancel_page(request.match_info["id"])
        except (ApiError, PageClosed) as exc:
            return self._closed(exc)
        return self._back(page, "Checkout cancelled", "Nothing was charged.")

    @staticmethod
    def _closed(exc: ApiError | PageClosed) -> web.Response:
        if isinstance(exc, ApiError):
            html = message_html("Checkout not found", "There is no such checkout.")
            return web.Response(text=html, content_type="text/html", status=404)
        html = message_html("Checkout closed", str(exc))
        return web.Response(text=html, content_type="text/html", status=410)

    @staticmethod
    def _back(page: HostedPage, title: str, text: str) -> web.Response:
        if page.redirect_url is None:
            return web.Response(text=message_html(title, text), content_type="text/html")
        location = URL(page.redirect_url).update_query(hostedpage_id=page.hostedpage_id)
        raise web.HTTPSeeOther(location=str(location))
