"""The small protocol a platform adapter implements so the renderer can draw a reply.

The renderer (`bridge.render`) decides *what* to show and *when*; a surface only knows
*how* to post and edit one message on its platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.backends.events import Source


@dataclass(frozen=True)
class SurfaceLimits:
    """Platform limits the renderer must respect.

    Attributes:
        max_message_chars: longest text one message may hold (Slack markdown 12,000;
            Discord 2,000); the renderer splits beyond it.
        min_edit_interval: seconds between two edits of one reply.
        streaming_marker: appended while streaming and removed by the final edit (a
            surface may rely on that to recognise the final edit); empty for surfaces
            that show their own progress.
    """

    max_message_chars: int
    min_edit_interval: float = 1.0
    streaming_marker: str = " ▌"


class ReplySurface(Protocol):
    """Where one answer is drawn: a thread, a DM, an interaction, a terminal.

    `post` and `edit` raise `bridge.errors.PlatformRateLimited` on a 429 the platform
    client did not absorb itself, and `bridge.errors.PlatformError` when the platform
    refuses for good (deleted channel, missing permission).
    """

    limits: SurfaceLimits

    @property
    def channel(self) -> str:
        """The channel (or thread) id the reply messages live in; valid after the first
        `post`. Stored so a later process can edit the reply (crash recovery)."""
        ...

    async def post(self, text: str) -> str:
        """Post a new message in the reply location; return its id (Slack ts, Discord id)."""
        ...

    async def edit(self, message_id: str, text: str) -> None:
        """Replace the text of a message this surface posted."""
        ...

    def neutralize(self, text: str) -> str:
        """Make text unable to ping anyone on this platform.

        Must be prefix-stable: neutralize(a + b) starts with neutralize(a), so streamed
        text never rewrites what was already shown.
        """
        ...

    def render_sources(self, sources: Sequence[Source]) -> str:
        """Render already filtered, de-duplicated sources as the block appended to an answer."""
        ...

    async def close(self) -> None:
        """Called once after the final edit (ends native streams, stops typing)."""
        ...


class ReplyEditor(Protocol):
    """Edits a reply posted by an earlier process; each platform adapter is one.

    Used at start-up to mark answers a crash interrupted, and on shutdown.
    """

    async def edit_message(self, channel: str, message_id: str, text: str) -> None: ...
