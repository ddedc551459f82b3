"""The earlier messages of a Slack thread the bot is called into late.

`conversations.replies` returns a thread oldest first, from its parent; the newest
messages are what a person means by "the question above", so the pages are read up to a
bound and `bridge.context.cap` keeps the newest that fit. Slack markup is turned into
plain, inert text here (`<@U1|ana>` → `@ana`), so nothing the backend echoes can carry a
mention's control syntax back into chat (the surfaces neutralise what they show anyway).
"""

from __future__ import annotations

import html
import re
from typing import Any

from bridge.context import CONTEXT_MAX_MESSAGES, ContextMessage, with_files
from bridge.slack.api import SlackApi

# Slack recommends at most 200 messages per page; five pages bound a huge thread's cost
# to five Tier 3 calls (the newest CONTEXT_MAX_MESSAGES are kept in any case).
REPLIES_PAGE_LIMIT = 200
REPLIES_MAX_PAGES = 5

# `<@U1>`, `<@U1|ana>`, `<!here>`, `<!subteam^S1|@team>`, `<#C1|general>`, `<https://…|label>`
_CONTROL = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_LITERAL_CONTROL = re.compile(r"<(?=[@!#])")


def plain_text(text: str) -> str:
    """Slack message markup → readable text with no control sequences left."""

    def replace(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            name = (label or target[1:]).removeprefix("@")
            return "@" + name.split("^", 1)[0]
        return f"{label} ({target})" if label and label != target else target

    # Literal "<@U1>" a person typed arrives escaped; unescaped, it must stay inert too.
    return _LITERAL_CONTROL.sub("‹", html.unescape(_CONTROL.sub(replace, text)))


def author_of(message: dict[str, Any]) -> str:
    """A readable author label: the display name Slack included, else the user id."""
    profile = message.get("user_profile") or {}
    for name in (profile.get("display_name"), profile.get("real_name")):
        if isinstance(name, str) and name.strip():
            return name.strip()
    bot = message.get("bot_profile") or {}
    if isinstance(bot.get("name"), str) and bot["name"]:
        return str(bot["name"])
    return str(message.get("user") or message.get("username") or "someone")


def to_context(message: dict[str, Any], *, bot_user_id: str, bot_id: str = "") -> ContextMessage:
    """One `conversations.replies` message as context (the bot's own as an assistant turn)."""
    files = [str(f.get("name") or f.get("title") or "") for f in message.get("files") or ()]
    own = bool(bot_user_id) and message.get("user") == bot_user_id
    own = own or (bool(bot_id) and message.get("bot_id") == bot_id)
    return ContextMessage(
        author=author_of(message),
        text=with_files(plain_text(str(message.get("text") or "")), files),
        from_bot=own,
    )


async def earlier_messages(
    api: SlackApi,
    *,
    channel: str,
    thread_ts: str,
    before_ts: str,
    bot_user_id: str,
    bot_id: str = "",
) -> list[ContextMessage]:
    """The thread's messages older than `before_ts` (the mention), oldest first.

    Raises the Slack API's errors (`missing_scope`, a 429); `load_context` turns them
    into a log line.
    """
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(REPLIES_MAX_PAGES):
        page = await api.call(
            "conversations.replies",
            channel=channel,
            ts=thread_ts,
            latest=before_ts,
            inclusive=False,
            limit=REPLIES_PAGE_LIMIT,
            cursor=cursor,
        )
        found.extend(m for m in page.get("messages") or () if _before(m, before_ts))
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not page.get("has_more") or not cursor:
            break
    recent = found[-(CONTEXT_MAX_MESSAGES * 2) :]  # empty ones are dropped by the cap
    return [to_context(m, bot_user_id=bot_user_id, bot_id=bot_id) for m in recent]


def _before(message: dict[str, Any], ts: str) -> bool:
    return _ts_key(str(message.get("ts") or "")) < _ts_key(ts)


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return (int(seconds), int(micros)) if seconds.isdigit() and micros.isdigit() else (0, 0)
