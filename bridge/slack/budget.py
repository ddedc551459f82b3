"""One shared call budget per Slack workspace, so many concurrent answers pace themselves.

Slack limits `chat.update` and `chat.appendStream` per workspace and app, not per
message: retrying after each 429 is not pacing. Every surface in a workspace takes a
token from the same bucket before an edit; when the bucket is empty the edit waits (the
renderer keeps merging text meanwhile, so each answer simply updates less often), and a
429 pauses the whole bucket for its `Retry-After`. Waiting calls are served by
`Priority` (finals, then first words, then progress), read again at every grant: a call
that waits while its answer ends is served as a final (late binding, `bridge.surface.Draft`).

Slack counts each method separately, so each gets its own bucket: `chat.update` (Tier 3),
`chat.appendStream` (Tier 4), the Tier 2 `chat.startStream` and `chat.stopStream`, and
`chat.postMessage`, which Slack limits per channel (about one per second, short bursts)
rather than per workspace, so its buckets are per (workspace, channel).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.pacing import TokenBucket

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
# chat.postMessage: ~1/s per channel with short bursts; placeholders of several answers
# in one channel, split-off parts and notices all queue here.
POST_PER_MINUTE = 54.0
POST_BURST = 2
# chat.delete is Tier 3 of its own (~50/min): it tidies placeholders whose answer was
# posted as a new message when chat.update's budget was the bottleneck.
DELETE_PER_MINUTE = 45.0
DELETE_BURST = 5

UPDATE = "update"  # chat.update
STREAM = "stream"  # chat.appendStream
STREAM_START = "stream_start"  # chat.startStream
STREAM_STOP = "stream_stop"  # chat.stopStream
POST = "post"  # chat.postMessage, one bucket per channel
DELETE = "delete"  # chat.delete


@dataclass(frozen=True)
class SlackRates:
    """Per-workspace budgets: sustained calls per minute and burst size for each kind
    (`stream_edge_*` applies to startStream and stopStream, each with its own bucket;
    `post_*` to each channel's chat.postMessage)."""

    update_per_minute: float = UPDATE_PER_MINUTE
    update_burst: int = UPDATE_BURST
    stream_per_minute: float = STREAM_PER_MINUTE
    stream_burst: int = STREAM_BURST
    stream_edge_per_minute: float = STREAM_EDGE_PER_MINUTE
    stream_edge_burst: int = STREAM_EDGE_BURST
    post_per_minute: float = POST_PER_MINUTE
    post_burst: int = POST_BURST
    delete_per_minute: float = DELETE_PER_MINUTE
    delete_burst: int = DELETE_BURST

    def for_kind(self, kind: str) -> tuple[float, int]:
        """(calls per minute, burst) for a budget kind."""
        if kind == UPDATE:
            return self.update_per_minute, self.update_burst
        if kind == STREAM:
            return self.stream_per_minute, self.stream_burst
        if kind == POST:
            return self.post_per_minute, self.post_burst
        if kind == DELETE:
            return self.delete_per_minute, self.delete_burst
        return self.stream_edge_per_minute, self.stream_edge_burst

    def scaled(self, speed: float) -> SlackRates:
        """These budgets for a Slack whose clock runs `speed` times faster (tests and
        benchmarks against `FakeSlack(speed=…)`): rates scale, bursts do not."""
        return SlackRates(
            update_per_minute=self.update_per_minute * speed,
            update_burst=self.update_burst,
            stream_per_minute=self.stream_per_minute * speed,
            stream_burst=self.stream_burst,
            stream_edge_per_minute=self.stream_edge_per_minute * speed,
            stream_edge_burst=self.stream_edge_burst,
            post_per_minute=self.post_per_minute * speed,
            post_burst=self.post_burst,
            delete_per_minute=self.delete_per_minute * speed,
            delete_burst=self.delete_burst,
        )


class WorkspaceBudgets:
    """Buckets created on first use, one per (workspace, kind, scope): the scope is the
    channel for `POST`, empty for the per-workspace kinds."""

    def __init__(self, rates: SlackRates = SlackRates()) -> None:
        self._rates = rates
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def bucket(self, team_id: str, kind: str, scope: str = "") -> TokenBucket:
        key = (team_id, kind, scope)
        found = self._buckets.get(key)
        if found is None:
            found = TokenBucket(*self._rates.for_kind(kind))
            self._buckets[key] = found
        return found
