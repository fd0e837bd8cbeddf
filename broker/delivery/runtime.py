"""The event loop the service runs on: uvloop where it is installed (Linux, macOS), which roughly
halves aiohttp's per-request overhead, else asyncio's own. Either is correct; one is faster."""

from __future__ import annotations

import asyncio
import importlib.util


def new_event_loop() -> asyncio.AbstractEventLoop:
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
