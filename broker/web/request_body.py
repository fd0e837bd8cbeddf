"""Request bodies that never arrive whole: a deadline for the body, and a clear answer when it
cannot be decompressed or the client hangs up halfway.

Without a proxy in front, nothing else stops a client that sends its headers and then trickles
or stalls: it holds a connection and a handler for as long as it likes. The deadline runs only
while the body is still arriving; once it is complete, the handler takes as long as its work
does. aiohttp reports a broken body as its own exceptions, which would otherwise surface as
500s; here they become the broker's errors, so the refusal counter and the log name them.
This middleware never reads the body itself: the handlers do, within their own size limits.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, DecompressSizeError
from aiohttp.typedefs import Handler

from broker.errors import BodyTimeout, ClientGone, InvalidPayload, PayloadTooLarge
from broker.web.appkeys import settings_key

# Named back to the client only when it is one of these (the header is the client's text).
KNOWN_ENCODINGS = frozenset({"gzip", "deflate", "br", "zstd", "x-gzip"})


@web.middleware
async def request_body_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    timeout = request.app[settings_key].server.body_timeout_seconds
    task = asyncio.current_task()
    assert task is not None  # aiohttp runs every handler in a task of its own
    expired = False

    def expire() -> None:
        nonlocal expired
        # A complete body is the handler's to take its time over: only a missing one ends it.
        if not request.content.is_eof():
            expired = True
            task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await handler(request)
    except asyncio.CancelledError:
        if not expired or task.uncancel() > 0:
            raise  # not our deadline, or a shutdown cancelled the handler as well
        raise BodyTimeout(
            f"the request body did not arrive within {timeout:g} seconds",
            hint="send the whole body at once; the connection has been closed",
        ) from None
    except web.RequestPayloadError as error:
        # The parser has given up on this body; marking it ended stops aiohttp from "lingering"
        # on it afterwards, which would re-raise the error as an unhandled exception and drop
        # the connection before our answer is read. The connection cannot carry another
        # request after a broken body, so the answer closes it.
        request.content.feed_eof()
        refusal = _payload_error(request, error)
        refusal.closes_connection = True
        raise refusal from None
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one too
        raise ClientGone("the client closed the connection before the body arrived") from None
    finally:
        timer.cancel()


def _payload_error(
    request: web.Request, error: web.RequestPayloadError
) -> InvalidPayload | PayloadTooLarge:
    """aiohttp wraps what its body parser found; the cause says which fault it was."""
    cause = error.__cause__
    if isinstance(cause, DecompressSizeError):
        return PayloadTooLarge(
            "the body decompresses to more than the broker accepts",
            hint="send one event per call",
        )
    if isinstance(cause, ContentEncodingError):
        return InvalidPayload(
            f"the body is declared as Content-Encoding: {_encoding(request)} "
            "but cannot be decompressed",
            hint="send the body uncompressed, or compress the whole body with that encoding",
        )
    return InvalidPayload(
        "the body's framing is broken (chunked encoding or length)",
        hint="send the body with a Content-Length that matches it",
    )


def _encoding(request: web.Request) -> str:
    declared = request.headers.get("Content-Encoding", "").strip().lower()
    return declared if declared in KNOWN_ENCODINGS else "(an encoding the broker cannot read)"
