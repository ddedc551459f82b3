"""Discord's rate limits as `FakeDiscord` enforces them, on by default.

Two layers, as on Discord: a global limit of 50 requests per second per bot (interaction
endpoints are exempt), and per-route buckets keyed by the route and its major parameter
(the channel, guild or webhook), each allowing `limit` requests per `per` seconds. Every
success carries the truthful `X-RateLimit-*` headers of its bucket (limit, remaining,
reset, reset-after, bucket hash), which discord.py reads to wait before a bucket runs
dry; a request over a limit gets Discord's 429 (with `Via`, so discord.py retries it
rather than taking it for a Cloudflare ban, and `global: true` for the global limit).
`speed` runs Discord's clock faster (windows shrink by it).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GLOBAL_PER_SECOND = 50
# (method, route template) → (requests, per seconds). Message sends and edits: 5 per 5 s
# per channel; anything else gets a generous default bucket (headers all the same).
ROUTE_LIMITS: Mapping[tuple[str, str], tuple[int, float]] = {
    ("POST", "/channels/{id}/messages"): (5, 5.0),
    ("PATCH", "/channels/{id}/messages/{id}"): (5, 5.0),
    ("POST", "/channels/{id}/typing"): (5, 5.0),
}
DEFAULT_ROUTE_LIMIT = (50, 1.0)
UNBOUND_PREFIXES = ("/webhooks/", "/interactions/")  # not bound to the global limit
_ID = re.compile(r"/\d{6,}")
_MAJOR = re.compile(r"^/(?:channels|guilds|webhooks)/(\d+)")


@dataclass
class _Bucket:
    window_end: float = 0.0
    remaining: int = 0


@dataclass(frozen=True)
class Decision:
    """What the fake does with one request: answer 429 (`body` set) or go on, adding
    `headers` to the response either way."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None


class DiscordLimits:
    """The global limit plus per-route buckets, on Discord time."""

    def __init__(
        self,
        *,
        global_per_second: int = GLOBAL_PER_SECOND,
        routes: Mapping[tuple[str, str], tuple[int, float]] = ROUTE_LIMITS,
        speed: float = 1.0,
    ) -> None:
        self.global_per_second = global_per_second
        self.speed = speed
        self._routes = dict(routes)
        self._recent: deque[float] = deque()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self.global_hits = 0  # 429s for the global limit
        self.route_hits = 0  # 429s for a route bucket

    def check(self, method: str, path: str) -> Decision:
        """Count one request to `path` (relative to the API prefix)."""
        now = time.monotonic()
        if not any(path.startswith(prefix) for prefix in UNBOUND_PREFIXES):
            over = self._global_wait(now)
            if over is not None:
                self.global_hits += 1
                return _too_many(
                    over, {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
                )
        template = _ID.sub("/{id}", path)
        major = _MAJOR.match(path)
        limit, per = self._routes.get((method, template), DEFAULT_ROUTE_LIMIT)
        key = (method, template, major.group(1) if major else "")
        bucket = self._buckets.setdefault(key, _Bucket())
        if now >= bucket.window_end:
            bucket.window_end, bucket.remaining = now + per / self.speed, limit
        reset_after = bucket.window_end - now
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(bucket.remaining - 1, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(f"{method} {template}".encode()).hexdigest()[:16],
        }
        if bucket.remaining <= 0:
            self.route_hits += 1
            return _too_many(reset_after, headers | {"X-RateLimit-Scope": "user"})
        bucket.remaining -= 1
        return Decision(headers)

    def _global_wait(self, now: float) -> float | None:
        window = 1.0 / self.speed
        while self._recent and self._recent[0] <= now - window:
            self._recent.popleft()
        if len(self._recent) >= self.global_per_second:
            return self._recent[0] + window - now
        self._recent.append(now)
        return None


def _too_many(retry_after: float, headers: dict[str, str]) -> Decision:
    seconds = math.ceil(retry_after * 1000) / 1000
    body = {
        "message": "You are being rate limited.",
        "retry_after": seconds,
        "global": "X-RateLimit-Global" in headers,
    }
    return Decision(
        headers | {"Via": "1.1 google", "Retry-After": str(max(1, math.ceil(seconds)))}, body
    )
