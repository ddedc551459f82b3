"""Pure decisions about Discord messages: no client, no network, unit-tested alone.

The handlers in `bridge.discord.adapter` stay thin by asking these.
"""

from __future__ import annotations

import re

# Discord rejects thread names over 100 characters.
THREAD_NAME_LIMIT = 100
FALLBACK_THREAD_NAME = "Question"
RESET_WORDS = frozenset({"reset", "/reset", "!reset"})

_WHITESPACE = re.compile(r"\s+")
_MENTION_SYNTAX = re.compile(r"<(@[!&]?|#)(\d+)>")


def strip_bot_mention(content: str, bot_id: int | str) -> str:
    """The question without the bot's own `<@id>` / `<@!id>` mention(s)."""
    pattern = re.compile(rf"<@!?{re.escape(str(bot_id))}>")
    return _WHITESPACE.sub(" ", pattern.sub(" ", content)).strip()


def is_reset_command(text: str) -> bool:
    """Whether a DM (or thread message) only asks to start a fresh conversation."""
    return text.strip().lower() in RESET_WORDS


def thread_name(question: str) -> str:
    """A readable thread title from the question: one line, mentions dropped, ≤ 100
    characters (cut at a word where possible, with an ellipsis)."""
    text = _WHITESPACE.sub(" ", _MENTION_SYNTAX.sub(" ", question)).strip()
    if not text:
        return FALLBACK_THREAD_NAME
    if len(text) <= THREAD_NAME_LIMIT:
        return text
    cut = text[: THREAD_NAME_LIMIT - 1]
    if " " in cut[THREAD_NAME_LIMIT // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"
