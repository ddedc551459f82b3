"""One shared call budget per Slack workspace, so many concurrent answers pace themselves.

Slack limits `chat.update` and `chat.appendStream` per workspace and app, not per
message: retrying after each 429 is not pacing. Every surface in a workspace takes a
token from the same bucket before an edit; when the bucket is empty the edit waits (the
renderer keeps merging text meanwhile, so each answer simply updates less often), and a
429 pauses the whole bucket for its `Retry-After`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Slack tiers (PLATFORM-NOTES.md): chat.update is Tier 3 (~50/min per workspace),
# chat.appendStream Tier 4 (~100/min). We stay a little under each, with short bursts so a
# single answer's first edits are not delayed.
UPDATE_PER_MINUTE = 45.0
UPDATE_BURST = 5
STREAM_PER_MINUTE = 90.0
STREAM_BURST = 10

UPDATE = "update"  # chat.update
STREAM = "stream"  # chat.startStream / appendStream / stopStream


@dataclass(frozen=True)
class SlackRates:
    """Per-workspace budgets: sustained calls per minute and burst size for each kind."""

    update_per_minute: float = UPDATE_PER_MINUTE
    update_burst: int = UPDATE_BURST
    stream_per_minute: float = STREAM_PER_MINUTE
    stream_burst: int = STREAM_BURST


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
            if kind == UPDATE:
                found = TokenBucket(self._rates.update_per_minute, self._rates.update_burst)
            else:
                found = TokenBucket(self._rates.stream_per_minute, self._rates.stream_burst)
            self._buckets[key] = found
        return found
