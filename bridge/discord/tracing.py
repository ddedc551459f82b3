"""Counts every Discord REST call (and every 429, including those discord.py retries
by itself) through an aiohttp trace hook on the client's own session."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

from bridge.discord.routing import PLATFORM
from bridge.metrics import PLATFORM_CALLS, PLATFORM_RATE_LIMITED

# Webhook and interaction tokens are secrets and unbounded label values: never a label.
_TOKEN_AFTER = frozenset({"webhooks", "interactions"})


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


def route_label(method: str, path: str) -> str:
    """A low-cardinality, secret-free metrics label for one Discord REST call:
    `PATCH /channels/:id/messages/:id`, `POST /webhooks/:id/:token`."""
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 2 and segments[0] == "api" and segments[1].startswith("v"):
        segments = segments[2:]
    labelled: list[str] = []
    for index, segment in enumerate(segments):
        if index >= 2 and segments[index - 2] in _TOKEN_AFTER:
            labelled.append(":token")
        elif segment.isdigit():
            labelled.append(":id")
        else:
            labelled.append(segment)
    return f"{method.upper()} /{'/'.join(labelled)}"
