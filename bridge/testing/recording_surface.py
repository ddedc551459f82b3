"""An in-memory `ReplySurface` that records every call, for tests of the relay.

It behaves like a platform that accepts everything; tests read `messages` (id → text)
and `calls` to assert what a person would have seen and how many API calls it took, and
`kinds` (one per call) for what the renderer said each call was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.backends.events import Source
from bridge.errors import BridgeError
from bridge.safety import markdown_sources_block, neutralize_discord
from bridge.surface import Draft, EditKind, SurfaceLimits
from bridge.testing.clock import FakeClock


@dataclass
class RecordingSurface:
    """Records posts and edits; `closed` turns true when the renderer is done."""

    limits: SurfaceLimits = field(
        default_factory=lambda: SurfaceLimits(max_message_chars=2000, min_edit_interval=0.05)
    )
    messages: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    kinds: list[EditKind] = field(default_factory=list)
    closed: bool = False

    @property
    def channel(self) -> str:
        return "memory"

    @property
    def text(self) -> str:
        """Everything shown, messages joined in order."""
        return "\n".join(self.messages.values())

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        message_id = f"m{len(self.messages) + 1}"
        self.messages[message_id] = text
        self.calls.append(("post", message_id, text))
        self.kinds.append(kind)
        return message_id

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        self.messages[message_id] = text
        self.calls.append(("edit", message_id, text))
        self.kinds.append(kind)

    def neutralize(self, text: str) -> str:
        return neutralize_discord(text)

    def render_sources(self, sources: Sequence[Source]) -> str:
        return markdown_sources_block(sources)

    async def close(self) -> None:
        self.closed = True


@dataclass
class RecordingEditor:
    """A `ReplyEditor` that records edits of earlier replies (crash recovery)."""

    edits: list[tuple[str, str, str]] = field(default_factory=list)

    async def edit_message(
        self, channel: str, message_id: str, text: str, *, workspace: str = ""
    ) -> None:
        self.edits.append((channel, message_id, text))


@dataclass
class ScriptedSurface(RecordingSurface):
    """A RecordingSurface that raises queued errors on its next calls and notes when
    each call happened."""

    clock: FakeClock | None = None
    failures: list[BridgeError] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        self._maybe_fail()
        return await super().post(text, kind=kind, draft=draft)

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        self._maybe_fail()
        await super().edit(message_id, text, kind=kind, draft=draft)

    def _maybe_fail(self) -> None:
        if self.clock is not None:
            self.times.append(self.clock.now)
        if self.failures:
            raise self.failures.pop(0)
