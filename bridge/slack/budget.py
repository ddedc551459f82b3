"""One shared call budget per Slack workspace, so many concurrent answers pace themselves.

Slack limits `chat.update` and `chat.appendStream` per workspace and app, not per
message: retrying after each 429 is not pacing. Every surface in a workspace takes a
token from the same bucket before an edit; when the bucket is empty the edit waits (the
renderer keeps merging text meanwhile, so each answer simply updates less often), and a
429 pauses the whole bucket for its `Retry-After`.

Slack counts each method separately, so each gets its own bucket: `chat.update` (Tier 3),
`chat.appendStream` (Tier 4), and the Tier 2 `chat.startStream` and `chat.stopStream`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Slack tiers (PLATFORM-NOTES.md, method reference pages): chat.update is Tier 3 (~50/min
# per workspace), chat.appendStream Tier 4 (~100/min), chat.startStream and chat.stopStream
# Tier 2 (~20/min each). We stay a little under each, with short bursts so a single
# answer's first edits are not delayed.
UPDATE_PER_MINUTE = 45.0
UPDATE_BURST = 5
STREAM_PER_MINUTE = 90.0
STREAM_BURST = 10
STREAM_EDGE_PER_MINUTE = 18.0
STREAM_EDGE_BURST = 5

UPDATE = "update"  # chat.update
STREAM = "stream"  # chat.appendStream
STREAM_START = "stream_start"  # chat.startStream
STREAM_STOP = "stream_stop"  # chat.stopStream


@dataclass(frozen=True)
class SlackRates:
    """Per-workspace budgets: sustained calls per minute and burst size for each kind
    (`stream_edge_*` applies to startStream and stopStream, each with its own bucket)."""

    update_per_minute: float = UPDATE_PER_MINUTE
    update_burst: int = UPDATE_BURST
    stream_per_minute: float = STREAM_PER_MINUTE
    stream_burst: int = STREAM_BURST
    stream_edge_per_minute: float = STREAM_EDGE_PER_MINUTE
    stream_edge_burst: int = STREAM_EDGE_BURST

    def for_kind(self, kind: str) -> tuple[float, int]:
        """(calls per minute, burst) for a budget kind."""
        if kind == UPDATE:
            return self.update_per_minute, self.update_burst
        if kind == STREAM:
            return self.stream_per_minute, self.stream_burst
        return self.stream_edge_per_minute, self.stream_edge_burst


class TokenBucket:
    """An async token bucket; waiters are served in arrival order (asyncio.Lock is FIFO).

    In any window of `w` seconds at most `burst + w * rate_per_minute / 60` calls pass.
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._seconds_per_token = 60.0 / rate_per_minute
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        # Nothing accrues while paused: after a 429 the budget restarts from empty.
        since = max(self._updated, self._paused_until)
        if now > since:
            earned = (now - since) / self._seconds_per_token
            self._tokens = min(self._capacity, self._tokens + earned)
        self._updated = max(self._updated, now)

    async def acquire(self) -> None:
        """Wait until a call may be made, then spend one token."""
        async with self._lock:
            while True:
                now = self._clock()
                self._refill(now)
                wait = self._paused_until - now
                if wait <= 0 and self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = max(wait, (1.0 - self._tokens) * self._seconds_per_token)
                await self._sleep(wait)

    def try_acquire(self) -> bool:
        """Spend a token only if one is free right now (nobody waiting, not paused)."""
        if self._lock.locked():
            return False
        now = self._clock()
        self._refill(now)
        if now < self._paused_until or self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def pause(self, seconds: float) -> None:
        """Slack said 429: nobody in this workspace calls again for `seconds`, and the
        burst allowance restarts empty so the resumption is gentle."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._refill(now)
        self._tokens = 0.0


class WorkspaceBudgets:
    """Buckets created on first use, one per (workspace, kind)."""

    def __init__(self, rates: SlackRates = SlackRates()) -> None:
        self._rates = rates
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def bucket(self, team_id: str, kind: str) -> TokenBucket:
        key = (team_id, kind)
        found = self._buckets.get(key)
        if found is None:
            found = TokenBucket(*self._rates.for_kind(kind))
            self._buckets[key] = found
        return found
