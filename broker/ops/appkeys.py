"""The typed keys only the operator console reads (the shared ones are ``web.appkeys``).

Present only when the console is configured (``ops.password_hash``).
"""

from __future__ import annotations

from aiohttp import web

from broker.core.login_throttle import LoginThrottle
from broker.ops.access import OpsSession, OpsSessionCodec
from broker.ops.hashing_pool import HashingPool
from broker.redaction import Redactor

ops_codec_key = web.AppKey("ops_codec", OpsSessionCodec)
ops_redactor_key = web.AppKey("ops_redactor", Redactor)
ops_throttle_key = web.AppKey("ops_login_throttle", LoginThrottle)
ops_hashing_key = web.AppKey("ops_password_hashing", HashingPool)
# The console session live_session found in the store for this request (absent: none).
ops_session_key = web.RequestKey("ops_session", OpsSession)
