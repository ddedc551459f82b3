"""One request budget per bot, shared by every answer: Discord's global rate limit.

Discord allows a bot about 50 REST requests per second in all, and answers more with
429s (and bans an IP after 10,000 invalid requests in 10 minutes). discord.py waits out
per-route buckets it has seen in response headers, but nothing paces the global limit
before it is hit, so a burst of mentions (thread creations, placeholders, typing, edits)
draws 429s. Here every REST request of the client takes a token from one bucket just
before it is sent (an aiohttp trace hook on discord.py's session), a little under the
limit. Calls wait by `Priority`, set by the caller for its task (`turn`): endings and
first words before placeholders' progress; a typing indicator is dropped when no token is
free, and a 429 that says `global` pauses the whole budget.

Interaction endpoints (`/webhooks/…`, `/interactions/…`) are not bound to the global
limit, so they pass without a token.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp

from bridge.pacing import Priority, TokenBucket

log = logging.getLogger(__name__)

# Discord's global limit is 50 requests/s per bot: at most burst + rate in any second.
GLOBAL_PER_SECOND = 40.0
GLOBAL_BURST = 5
UNBOUND_PREFIXES = ("/webhooks/", "/interactions/")
DEFAULT_RETRY_AFTER = 1.0


@dataclass(frozen=True)
class Turn:
    """How the requests of the current task wait for the budget."""

    priority: Priority = Priority.FINAL
    droppable: bool = False  # not sent at all when no token is free right now


ANY_CALL = Turn()  # a request no caller marked: it waits like a final
_TURN: contextvars.ContextVar[Turn] = contextvars.ContextVar("discord_turn", default=ANY_CALL)


@contextmanager
def turn(priority: Priority, *, droppable: bool = False) -> Iterator[None]:
    """Requests made inside wait with `priority` (droppable ones are not sent when the
    budget has no token free)."""
    token = _TURN.set(Turn(priority, droppable))
    try:
        yield
    finally:
        _TURN.reset(token)


class BudgetDropped(aiohttp.ClientError):
    """A droppable request (a typing indicator) found no free token and was not sent."""


class GlobalBudget:
    """The bot's global request budget, applied to discord.py through `trace`."""

    def __init__(self, per_second: float = GLOBAL_PER_SECOND, burst: int = GLOBAL_BURST) -> None:
        self.bucket = TokenBucket(per_second * 60.0, burst)

    def install(self, trace: aiohttp.TraceConfig) -> aiohttp.TraceConfig:
        """Add the budget's hooks to the trace config discord.py's session uses."""
        trace.on_request_start.append(self._before)
        trace.on_request_end.append(self._after)
        return trace

    async def _before(
        self,
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        if _unbound(params.url.path):
            return
        wanted = _TURN.get()
        if wanted.droppable:
            if not self.bucket.try_acquire():
                raise BudgetDropped(f"no request budget for {params.method} {params.url.path}")
            return
        await self.bucket.acquire(wanted.priority)

    async def _after(
        self,
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        if response.status == 429 and response.headers.get("X-RateLimit-Global"):
            retry_after = _seconds(response.headers.get("Retry-After"))
            log.warning("discord global rate limit hit; pausing every call %.1fs", retry_after)
            self.bucket.pause(retry_after)


def _unbound(path: str) -> bool:
    return any(prefix in path for prefix in UNBOUND_PREFIXES)


def _seconds(value: str | None) -> float:
    try:
        return max(float(value), 0.0) if value else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
