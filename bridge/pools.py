"""HTTP connection pools: one per destination, each sized for the answers that run at once.

A backend stream holds its connection for the whole answer, while the platform calls that
post, edit and finish that answer are short. With one shared pool (aiohttp's default of
100 connections) a thousand answers let the streams take every connection: the platform
calls that would finish them queued behind them, and streams waiting for a connection ran
into the connect timeout and were reported as an unreachable backend. So each destination
gets its own pool, sized from `BRIDGE_MAX_CONCURRENCY`: backend streams can never starve
the platform calls, and at the cap no stream waits for a connection at all.

A wait for a pooled connection is not a failure to connect: backend requests time only the
TCP (and TLS) connect (`sock_connect`), and the wait is observed in
`bridge_http_pool_wait_seconds{pool}`, so an operator sees a pool that is too small.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp

from bridge import metrics

BACKEND_SPARE_CONNECTIONS = 8
"""Backend connections beyond one per running answer: a retry opening while the failed
response still closes, `bridge check`, a stream that ends as the next answer starts."""

PLATFORM_CALLS_PER_ANSWER = 2
"""Platform calls one answer can have in flight: its one edit (the renderer keeps at most
one per reply) and a placeholder, status or closing call beside it. Queued answers post
their "Queued" placeholder through the same pool."""

PLATFORM_SPARE_CONNECTIONS = 16
"""Platform connections for calls that belong to no running answer: crash-recovery edits,
identity checks, the closers of answers that just ended."""


@dataclass(frozen=True)
class PoolSizes:
    """Connection limits per destination."""

    backend: int
    platform: int

    @classmethod
    def for_concurrency(cls, answers: int) -> PoolSizes:
        """Enough for `answers` streaming at once (`BRIDGE_MAX_CONCURRENCY`) never to wait."""
        return cls(
            backend=answers + BACKEND_SPARE_CONNECTIONS,
            platform=answers * PLATFORM_CALLS_PER_ANSWER + PLATFORM_SPARE_CONNECTIONS,
        )


@dataclass(frozen=True)
class Pools:
    """The process's client sessions, one per destination; opened by `open_pools`."""

    backend: aiohttp.ClientSession
    slack: aiohttp.ClientSession
    sizes: PoolSizes


@asynccontextmanager
async def open_pools(sizes: PoolSizes) -> AsyncIterator[Pools]:
    """Open one session per destination; close them all when the block ends."""
    async with AsyncExitStack() as stack:
        backend = await stack.enter_async_context(pool_session("backend", sizes.backend))
        slack = await stack.enter_async_context(pool_session("slack", sizes.platform))
        yield Pools(backend=backend, slack=slack, sizes=sizes)


def pool_session(name: str, limit: int) -> aiohttp.ClientSession:
    """A session whose connector holds at most `limit` connections, waits observed."""
    trace = observe_pool_waits(aiohttp.TraceConfig(), name)
    return aiohttp.ClientSession(connector=pool_connector(limit), trace_configs=[trace])


def pool_connector(limit: int) -> aiohttp.TCPConnector:
    """A connector of `limit` connections, with no separate per-host cap (a pool serves
    one destination)."""
    return aiohttp.TCPConnector(limit=limit, limit_per_host=0)


def observe_pool_waits(trace: aiohttp.TraceConfig, name: str) -> aiohttp.TraceConfig:
    """Make `trace` record each wait for a free connection of pool `name`; returns it.

    (discord.py takes one trace config, so the Discord adapter adds these to its own.)"""
    waits = metrics.HTTP_POOL_WAIT.labels(pool=name)

    async def queued(
        _session: aiohttp.ClientSession, context: SimpleNamespace, _params: object
    ) -> None:
        context.pool_wait_started = time.monotonic()

    async def dequeued(
        _session: aiohttp.ClientSession, context: SimpleNamespace, _params: object
    ) -> None:
        started = getattr(context, "pool_wait_started", None)
        if started is not None:
            waits.observe(time.monotonic() - started)

    trace.on_connection_queued_start.append(queued)
    trace.on_connection_queued_end.append(dequeued)
    return trace
