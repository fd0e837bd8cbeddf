"""Which address a request came from, for limits and logs: never a header believed blindly.

The peer's address, unless ``server.behind_tls_proxy`` says the broker sits behind the deploy's
proxy (deploy/nginx.conf, deploy/Caddyfile), which *replaces* X-Forwarded-For with the address
it saw: then the header's last entry, if it is an IP address. Without that setting the header is
ignored, since any client can send one.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from broker.web.appkeys import settings_key

UNKNOWN = "unknown"


def client_address(request: web.Request) -> str:
    peer = request.remote or UNKNOWN
    if not request.app[settings_key].server.behind_tls_proxy:
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer
