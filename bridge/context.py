"""Earlier messages sent with a question: what a person sees above their mention.

People call the bot into a discussion that is already going ("@bot what's the answer to
the question above?"). When the bot has no conversation in that thread yet, the adapter
hands the relay a `QuestionContext` that can load the earlier messages (Slack
`conversations.replies`, Discord thread history or reply chain); the relay loads it only
on a conversation's first turn (later turns continue through `chatlogId` /
`previous_response_id`), and the backend client sends it in the form its API has:
Wonderchat's `context` text, the Widget API's earlier `messages`.

Everything here is pure except `load_context`, which never raises: a fetch that fails
(missing scope, rate limit, timeout) costs the context, never the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

# The cap on what goes with one question. Twenty messages cover the discussion a person
# means by "above" in nearly every thread; 6,000 characters keep the request well inside
# what both backends accept beside their own prompt (Wonderchat documents no limit for
# `context`; OpenAI-style models count earlier messages against their context window).
# The newest messages are kept when a thread is longer.
CONTEXT_MAX_MESSAGES = 20
CONTEXT_MAX_CHARS = 6_000
# One long message (a pasted log) must not crowd out the rest: each is cut to this.
CONTEXT_MESSAGE_CHARS = 1_500
# A platform that does not answer in this time is not waited for: the question goes alone.
CONTEXT_FETCH_SECONDS = 5.0
CUT_MARK = " …"
ASSISTANT = "assistant"
WONDERCHAT_HEADER = "Earlier messages in this conversation, oldest first:"


@dataclass(frozen=True)
class ContextMessage:
    """One earlier message, already made safe: mentions neutralised, files noted.

    Attributes:
        author: a readable label for who wrote it ("alice", "U024BE7LH"); ignored for
            the bot's own messages.
        text: the message text, with "[file: name]" for each attachment.
        from_bot: the bot's own earlier message, sent as an assistant turn.
    """

    author: str
    text: str
    from_bot: bool = False


ContextLoader = Callable[[], Awaitable[Sequence[ContextMessage]]]


@dataclass(frozen=True)
class QuestionContext:
    """How to load a question's earlier messages, and when.

    Attributes:
        load: fetches the messages (oldest first); may raise, `load_context` catches.
        every_turn: send them even when the conversation already exists ("ask about
            this message": the message is the subject of the question, not background).
    """

    load: ContextLoader
    every_turn: bool = False


def fixed_context(messages: Sequence[ContextMessage]) -> QuestionContext:
    """Context already at hand (the message a question is about), sent every turn."""
    found = tuple(messages)

    async def load() -> Sequence[ContextMessage]:
        return found

    return QuestionContext(load, every_turn=True)


def cap(
    messages: Sequence[ContextMessage],
    *,
    max_messages: int = CONTEXT_MAX_MESSAGES,
    max_chars: int = CONTEXT_MAX_CHARS,
    message_chars: int = CONTEXT_MESSAGE_CHARS,
) -> tuple[ContextMessage, ...]:
    """The newest messages that fit the cap, oldest first; empty ones are dropped."""
    kept: list[ContextMessage] = []
    used = 0
    for message in reversed(messages):
        text = message.text.strip()
        if not text:
            continue
        if len(text) > message_chars:
            text = text[: message_chars - len(CUT_MARK)].rstrip() + CUT_MARK
        if len(kept) >= max_messages or used + len(text) > max_chars:
            break
        kept.append(ContextMessage(message.author, text, message.from_bot))
        used += len(text)
    kept.reverse()
    return tuple(kept)


def file_notes(names: Sequence[str]) -> str:
    """ "[file: name]" for each attachment, so the backend knows something was shared."""
    return " ".join(f"[file: {name or 'unnamed'}]" for name in names)


def with_files(text: str, names: Sequence[str]) -> str:
    """A message's text followed by its file notes."""
    return " ".join(part for part in (text.strip(), file_notes(names)) if part)


def as_text(messages: Sequence[ContextMessage]) -> str:
    """Wonderchat's `context`: one "author: text" paragraph per message under a header."""
    if not messages:
        return ""
    lines = [f"{_speaker(m)}: {m.text}" for m in messages]
    return "\n\n".join([WONDERCHAT_HEADER, *lines])


def as_chat_messages(messages: Sequence[ContextMessage]) -> list[dict[str, str]]:
    """Widget API earlier `messages`: the bot's as assistant turns, people's as user
    turns prefixed with their author (several people may have written)."""
    return [
        {"role": ASSISTANT, "content": m.text}
        if m.from_bot
        else {"role": "user", "content": f"{m.author}: {m.text}"}
        for m in messages
    ]


def _speaker(message: ContextMessage) -> str:
    return ASSISTANT if message.from_bot else message.author


async def load_context(
    context: QuestionContext | None,
    *,
    first_turn: bool,
    patience: float = CONTEXT_FETCH_SECONDS,
) -> tuple[ContextMessage, ...]:
    """Load and cap a question's earlier messages when they should go with it.

    Never raises (except cancellation): a failed or slow fetch is logged with its
    reason and the question goes without context.
    """
    if context is None or not (first_turn or context.every_turn):
        return ()
    try:
        async with asyncio.timeout(patience):
            messages = await context.load()
    except TimeoutError:
        log.warning("earlier messages not sent: the platform did not answer in %.0f s", patience)
        return ()
    except Exception as exc:  # any platform refusal: answer without the context
        log.warning("earlier messages not sent: %s", exc)
        return ()
    capped = cap(messages)
    log.info("sending %d earlier messages with the question", len(capped))
    return capped
