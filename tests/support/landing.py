"""What the landing tests share: the landing parameters of a visitor, and opening /manage with
them, signed like the Vertical Solution's link."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from broker.web.appkeys import clock_key
from tests.support.basics import EMAIL, ZGID, ZUID, link_signature

Client = TestClient[web.Request, web.Application]


async def open_page(
    client: Client,
    params: Any = None,
    *,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    sign: bool = True,
) -> tuple[ClientResponse, str]:
    """GET /manage with query parameters, or POST it as a form when ``form`` is given; signed
    like the Vertical Solution's link (fresh ts and nonce) unless ``sign`` is false."""
    if sign:
        query = list(params.items() if isinstance(params, dict) else params or [])
        fields = list((form or {}).items())
        signature = link_signature(query + fields, now=client.app[clock_key]())
        params, form = (
            (query + signature, None) if form is None else (query, dict(fields + signature))
        )
    if form is None:
        response = await client.get("/manage", params=params, headers=headers)
    else:
        response = await client.post("/manage", params=params, data=form, headers=headers)
    return response, await response.text()


def visitor(
    zuid: str = ZUID, zgid: str = ZGID, email: str | None = EMAIL, **extra: str
) -> dict[str, str]:
    params = {"zuid": zuid, "zgid": zgid, **extra}
    if email is not None:
        params["email"] = email
    return params
