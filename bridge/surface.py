"""The small protocol a platform adapter implements so the renderer can draw a reply.

The renderer (`bridge.render`) decides *what* to show and *when*; a surface only knows
*how* to post and edit one message on its platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.backends.events import Source


@dataclass(frozen=True)
class SurfaceLimits:
    """Platform limits the renderer must respect.

    Attributes:
        max_message_chars: longest text one message may hold (Slack markdown 12,000;
            Discord 2,000); the renderer splits beyond it.
        min_edit_interval: seconds between two edits of one reply.
        streaming_marker: appended to live text (kinds `FIRST_WORDS` and `PROGRESS`)
            when it fits, never to other kinds; empty for surfaces that show their own
            progress.
    """

    max_message_chars: int
    min_edit_interval: float = 1.0
    streaming_marker: str = " ▌"


class EditKind(StrEnum):
    """What a `post` or `edit` is, as only the renderer knows: surfaces pace and order
    calls by it (a status line and an answer that looks like one differ only here).

    `FIRST_WORDS` and `PROGRESS` are live text that a later call replaces; `FINAL` and
    `NOTICE` end the answer (a surface never drops them).
    """

    STATUS = "status"  # the placeholder or a status line: no answer text yet
    FIRST_WORDS = "first_words"  # the first answer text, replacing the placeholder
    PROGRESS = "progress"  # more streamed text, or a part split off while streaming
    FINAL = "final"  # the authoritative answer with its sources
    NOTICE = "notice"  # an ending with a warning (failed, interrupted) or a one-line notice


class Draft(Protocol):
    """A call's newest content, read when the call may go out (late binding).

    A surface that waits for platform budget reads `kind` while it waits (an answer that
    ends meanwhile turns a first-words or progress call into its final one, with final
    priority) and calls `text()` once, just before sending: what it sends is then never
    older than what the renderer has, and the renderer learns exactly what was shown.
    """

    @property
    def kind(self) -> EditKind: ...

    def text(self) -> str: ...


class ReplySurface(Protocol):
    """Where one answer is drawn: a thread, a DM, an interaction, a terminal.

    `post` and `edit` raise `bridge.errors.PlatformRateLimited` on a 429 the platform
    client did not absorb itself, and `bridge.errors.PlatformError` when the platform
    refuses for good (deleted channel, missing permission). Each call says what it is
    (`kind`); a surface may pace or order calls by kind but never guesses it from text.
    """

    limits: SurfaceLimits

    @property
    def channel(self) -> str:
        """The channel (or thread) id the reply messages live in; valid after the first
        `post`. Stored so a later process can edit the reply (crash recovery)."""
        ...

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        """Post a new message in the reply location; return its id (Slack ts, Discord id).

        With a `draft`, a surface that had to wait sends `draft.text()` instead of `text`.
        """
        ...

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        """Replace the text of a message this surface posted (`draft`: as for `post`)."""
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

    async def edit_message(
        self, channel: str, message_id: str, text: str, *, workspace: str = ""
    ) -> None:
        """`workspace`: the Slack team / Discord guild of the message (Slack OAuth mode
        answers with that team's token)."""
        ...
