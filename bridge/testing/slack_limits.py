"""Slack's rate limits as `FakeSlack` enforces them, on by default.

Per method and workspace, Slack allows a number of calls per minute (its tiers);
`chat.postMessage` is limited per channel instead (about one per second, short bursts);
a native stream left open too long ends on Slack's side. The fake answers a call over a
limit the way Slack does, with HTTP 429 and `Retry-After`, so a client that paces itself
draws none. `speed` runs Slack's clock faster (a minute lasts `60 / speed` seconds), so
tests and benchmarks keep production proportions without waiting production times;
`SlackRates.scaled(speed)` gives the bridge's matching budgets.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

# Calls per minute per workspace (Slack's method reference pages; PLATFORM-NOTES.md).
PRODUCTION_TIERS: Mapping[str, int] = {
    "chat.update": 50,  # Tier 3
    "chat.delete": 50,  # Tier 3
    "chat.appendStream": 100,  # Tier 4
    "chat.startStream": 20,  # Tier 2
    "chat.stopStream": 20,  # Tier 2
}
SLACK_MINUTE = 60.0
# Slack ends a native stream left open about this long (python-slack-sdk issue 1859).
STREAM_LIFETIME = 300.0


@dataclass(frozen=True)
class ChannelPosts:
    """chat.postMessage per channel: a token bucket of `burst`, refilled `per_second`."""

    per_second: float = 1.0
    burst: int = 3


class SlackLimits:
    """Sliding-window method tiers plus per-channel post buckets, on Slack time."""

    def __init__(
        self,
        tiers: Mapping[str, int] = PRODUCTION_TIERS,
        *,
        channel_posts: ChannelPosts | None = ChannelPosts(),
        speed: float = 1.0,
        stream_lifetime: float = STREAM_LIFETIME,
    ) -> None:
        self._tiers = dict(tiers)
        self._channel_posts = channel_posts
        self.speed = speed
        self.minute = SLACK_MINUTE / speed
        self.stream_lifetime = stream_lifetime / speed
        self._recent: dict[str, deque[float]] = {method: deque() for method in self._tiers}
        self._posts: dict[str, tuple[float, float]] = {}  # channel → (tokens, updated)

    def over(self, method: str, params: Mapping[str, object]) -> float | None:
        """Count a call; the `Retry-After` (seconds) when it is over a limit, else None."""
        now = time.monotonic()
        if method == "chat.postMessage" and self._channel_posts is not None:
            wait = self._post_wait(str(params.get("channel", "")), now)
            if wait is not None:
                return wait
        recent = self._recent.get(method)
        if recent is None:
            return None
        while recent and recent[0] <= now - self.minute:
            recent.popleft()
        if len(recent) >= self._tiers[method]:
            return _round_up(recent[0] + self.minute - now)
        recent.append(now)
        return None

    def retry_after_header(self, seconds: float) -> str:
        """Slack's Retry-After is whole seconds (at least 1) of Slack time: at speed 1 an
        integer, on a faster clock the real seconds those whole Slack seconds take."""
        whole = max(1, math.ceil(seconds * self.speed - 1e-9))
        return str(whole) if self.speed == 1 else f"{whole / self.speed:g}"

    def stream_expired(self, started_at: float) -> bool:
        """Whether a stream started at `started_at` (monotonic) has been ended by Slack."""
        return time.monotonic() - started_at > self.stream_lifetime

    def _post_wait(self, channel: str, now: float) -> float | None:
        assert self._channel_posts is not None
        rate = self._channel_posts.per_second * self.speed
        capacity = float(self._channel_posts.burst)
        tokens, updated = self._posts.get(channel, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * rate)
        if tokens < 1.0:
            self._posts[channel] = (tokens, now)
            return _round_up((1.0 - tokens) / rate)
        self._posts[channel] = (tokens - 1.0, now)
        return None


def _round_up(seconds: float) -> float:
    """Rounded up to the millisecond, so a client waiting exactly this long gets through."""
    return math.ceil(seconds * 1000) / 1000
