"""Counts every Discord REST call (and every 429, including those discord.py retries
by itself) through an aiohttp trace hook on the client's own session."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

from bridge.discord.filters import route_label
from bridge.metrics import PLATFORM_CALLS, PLATFORM_RATE_LIMITED

PLATFORM = "discord"


async def _on_request_end(
    _session: aiohttp.ClientSession,
    _context: SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    PLATFORM_CALLS.labels(PLATFORM, route_label(params.method, params.url.path)).inc()
    if params.response.status == 429:
        PLATFORM_RATE_LIMITED.labels(PLATFORM).inc()


def metrics_trace() -> aiohttp.TraceConfig:
    """A trace config for `discord.Client(http_trace=...)`."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    return trace
