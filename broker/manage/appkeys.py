"""The typed keys only the Manage Subscription page reads (the shared ones are ``web.appkeys``)."""

from __future__ import annotations

from aiohttp import web

from broker.clients.oidc import OidcClient
from broker.clients.zoho_org import ZohoOrgClient
from broker.manage.sessions import SessionCodec

session_codec_key = web.AppKey("session_codec", SessionCodec)
# Present only with landing.verify = "zoho".
oidc_client_key = web.AppKey("oidc_client", OidcClient)
org_client_key = web.AppKey("org_client", ZohoOrgClient)
