"""Earlier Discord messages sent with a question: a thread's history, or a reply chain.

Without the privileged message-content intent Discord withholds the text of other
people's messages (history included), except those that mention the bot; such empty
messages are dropped by the cap, so thread context needs DISCORD_MESSAGE_CONTENT=true to
be useful. Mentions become plain "@name" text (`clean_content`), and anything still
shaped like a mention is broken, so the backend never sees mention syntax to echo.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord

from bridge.context import (
    CONTEXT_MAX_MESSAGES,
    ContextMessage,
    QuestionContext,
    fixed_context,
    with_files,
)
from bridge.discord.surface import guarded

# One history page: twice the cap, as system messages and withheld texts are dropped.
HISTORY_LIMIT = 2 * CONTEXT_MAX_MESSAGES
# A reply chain is followed one REST call per hop; this bounds a long chain's cost.
REPLY_CHAIN_HOPS = 10

_MENTION_SHAPE = re.compile(r"<(?=[@#])|@(?=everyone|here)")


def inert(text: str) -> str:
    """Break what `clean_content` leaves that could still read as a mention."""
    return _MENTION_SHAPE.sub(lambda m: "‹" if m.group() == "<" else "@\u200b", text)


def to_context(message: discord.Message, bot_id: int) -> ContextMessage:
    """One message as context (the bot's own as an assistant turn)."""
    files = [attachment.filename for attachment in message.attachments]
    return ContextMessage(
        author=message.author.display_name,
        text=with_files(inert(message.clean_content), files),
        from_bot=message.author.id == bot_id,
    )


def _is_conversation(message: discord.Message) -> bool:
    return message.type in (discord.MessageType.default, discord.MessageType.reply)


def thread_history(
    channel: discord.abc.Messageable, before: discord.Message, bot_id: int
) -> QuestionContext:
    """The messages of the thread (or channel) before the mention, oldest first."""

    async def load() -> Sequence[ContextMessage]:
        found = [
            message
            async for message in channel.history(limit=HISTORY_LIMIT, before=before)
            if _is_conversation(message)
        ]
        return [to_context(message, bot_id) for message in reversed(found)]

    return QuestionContext(lambda: guarded(load()))


def reply_chain(message: discord.Message, bot_id: int) -> QuestionContext:
    """The messages this one replies to, transitively (oldest first)."""

    async def load() -> Sequence[ContextMessage]:
        chain: list[discord.Message] = []
        current = message
        for _ in range(REPLY_CHAIN_HOPS):
            reference = current.reference
            if reference is None or reference.message_id is None:
                break
            resolved = reference.resolved
            if not isinstance(resolved, discord.Message):
                resolved = await current.channel.fetch_message(reference.message_id)
            chain.append(resolved)
            current = resolved
        return [to_context(m, bot_id) for m in reversed(chain)]

    return QuestionContext(lambda: guarded(load()))


def message_context(message: discord.Message, bot_id: int) -> QuestionContext:
    """One message as the subject of a question ("Ask bot" on it): sent every turn."""
    return fixed_context([to_context(message, bot_id)])
