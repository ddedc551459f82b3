"""Discord private answers: `/ask private:true` and the "Share in channel" button.

The answer streams through the interaction's ephemeral response (the deferred
"thinking…" message, then follow-up edits). Discord honours an interaction token for
15 minutes: an answer still streaming after that can no longer be edited — the renderer
records the refusal as a platform error and the person sees the text as it was then
(backends normally finish in seconds; BRIDGE_IDLE_TIMEOUT ends a silent one long
before). The final message carries a "Share in channel" button; pressing it posts the
finished answer, sources included, in the channel, attributed to whoever pressed it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bridge.discord.surface import NO_MENTIONS, InteractionSurface, guarded
from bridge.errors import BridgeError
from bridge.private import (
    SHARE_GONE_TEXT,
    SHARE_LABEL,
    SHARED_NOTICE,
    AnswerCopy,
    ShareBook,
    shared_text,
)
from bridge.safety import neutralize_discord
from bridge.splitting import split_message
from bridge.surface import Draft, EditKind, SurfaceLimits

log = logging.getLogger(__name__)

SHARE_ID_PREFIX = "share:"
SHARE_CUSTOM_ID = re.compile(r"share:(?P<share_id>[0-9]+)")

OnShare = Callable[[discord.Interaction, str], Awaitable[None]]


class PrivateSurface(InteractionSurface):
    """An ephemeral `/ask` answer whose final message gets the Share button."""

    def __init__(
        self, interaction: discord.Interaction, limits: SurfaceLimits, book: ShareBook
    ) -> None:
        super().__init__(interaction, limits, ephemeral=True)
        self._share_id = str(interaction.id)
        self._book = book
        self._copy = AnswerCopy()

    def components(self, kind: EditKind) -> dict[str, discord.ui.View]:
        if kind is not EditKind.FINAL:
            return {}
        view = discord.ui.View(timeout=None)
        view.add_item(share_button(self._share_id))
        return {"view": view}

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        message_id = await super().post(text, kind=kind)  # never waits: `text` is newest
        self._keep(message_id, text, kind)
        return message_id

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        await super().edit(message_id, text, kind=kind)
        self._keep(message_id, text, kind)

    def _keep(self, message_id: str, text: str, kind: EditKind) -> None:
        self._copy.shown(message_id, text)
        if kind is EditKind.FINAL:
            self._book.remember(self._share_id, self._copy.text)


def share_button(share_id: str) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        label=SHARE_LABEL,
        style=discord.ButtonStyle.primary,
        custom_id=SHARE_ID_PREFIX + share_id,
    )


def share_button_type(on_share: OnShare) -> type[discord.ui.DynamicItem[Any]]:
    """The persistent Share button (a discord.py dynamic item: any process, any time)."""

    class ShareButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=SHARE_CUSTOM_ID):
        def __init__(self, share_id: str) -> None:
            super().__init__(share_button(share_id))
            self.share_id = share_id

        @classmethod
        async def from_custom_id(
            cls, interaction: discord.Interaction, item: Any, match: re.Match[str]
        ) -> ShareButton:
            return cls(match["share_id"])

        async def callback(self, interaction: discord.Interaction) -> None:
            await on_share(interaction, self.share_id)

    return ShareButton


class Sharing:
    """Posts shared answers in the channel the button was pressed in."""

    def __init__(self, book: ShareBook, limits: SurfaceLimits) -> None:
        self.book = book
        self._limits = limits

    async def share(self, interaction: discord.Interaction, share_id: str) -> None:
        """Acknowledge at once (Discord's 3 s), post, then say how it went."""
        try:
            await guarded(interaction.response.defer(ephemeral=True, thinking=True))
        except BridgeError as exc:
            log.warning("could not acknowledge the Share button: %s", exc)
            return
        text = self.book.get(share_id)
        if text is None and interaction.message is not None:
            text = interaction.message.content  # another process answered: its last part
        channel = interaction.channel
        if not text or not isinstance(channel, discord.abc.Messageable):
            await _tell(interaction, SHARE_GONE_TEXT)
            return
        sharer = neutralize_discord(interaction.user.display_name)
        try:
            for part in split_message(shared_text(text, sharer), self._limits.max_message_chars):
                await guarded(
                    channel.send(part, allowed_mentions=NO_MENTIONS, suppress_embeds=True),
                    repeatable=False,
                )
        except BridgeError as exc:
            log.warning("could not share an answer in channel %s: %s", channel, exc)
            await _tell(interaction, f"Sorry, I could not post it here: {exc}.")
            return
        await _tell(interaction, SHARED_NOTICE)


async def _tell(interaction: discord.Interaction, text: str) -> None:
    """Replace the deferred ("thinking…") ephemeral response with `text`."""
    try:
        await guarded(
            interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
        )
    except BridgeError as exc:
        log.warning("could not answer the Share button: %s", exc)
