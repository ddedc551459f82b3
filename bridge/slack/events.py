"""Pure routing of Slack event payloads: which ones the bridge answers, and where.

Kept free of I/O so every rule (bot and self filtering, mention stripping, DM reset,
thread follow-ups) is unit-tested on plain dicts; the bolt handlers only call `route_event`
and act on the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bridge.model import Question, ThreadKey

PLATFORM = "slack"
RESET_COMMAND = "reset"
# Conversations where people talk to the bot without mentioning it: DMs with the app.
DM_CHANNEL_TYPES = frozenset({"im"})
# Channels where a route may turn on answering every top-level message (mode `all`):
# public and private channels (message.channels / message.groups).
AUTO_CHANNEL_TYPES = frozenset({"channel", "group"})
# Message subtypes that are still a person writing: a thread reply also sent to the
# channel, and a message with a file attached. Every other subtype (edits, deletions,
# joins, bot messages) is ignored.
HUMAN_SUBTYPES = frozenset({"thread_broadcast", "file_share"})


class Route(Enum):
    """What to do with an event the bridge did not ignore."""

    ANSWER = "answer"  # mention or DM: answer unconditionally
    FOLLOW_UP = "follow_up"  # channel thread reply without mention: answer if the thread is known
    AUTO = (
        "auto"  # top-level channel message without mention: answer if the channel's route says all
    )
    RESET = "reset"  # DM "reset": forget the conversation


@dataclass(frozen=True)
class Incoming:
    """A Slack event the bridge acts on.

    Attributes:
        route: what to do.
        question: the neutral question (text already stripped of the bot mention).
        team_id: the workspace, for streaming recipients and the per-workspace budget.
        reply_thread_ts: thread to reply in, or None to reply at the top level of a DM.
        message_ts: the triggering message's own ts.
    """

    route: Route
    question: Question
    team_id: str
    reply_thread_ts: str | None
    message_ts: str = ""

    @property
    def joins_thread(self) -> bool:
        """A mention inside a channel thread that already holds other messages: their
        earlier messages may go with the question (`bridge.slack.thread_context`)."""
        return (
            self.route is Route.ANSWER
            and not self.question.is_dm
            and self.reply_thread_ts is not None
            and self.reply_thread_ts != self.message_ts
        )


def strip_mention(text: str, bot_user_id: str) -> str:
    """Remove every `<@BOT>` / `<@BOT|name>` mention of the bot and tidy the spacing."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def mentions_bot(text: str, bot_user_id: str) -> bool:
    """True when `text` mentions the bot (Slack then also sends an `app_mention`)."""
    return bool(bot_user_id) and f"<@{bot_user_id}" in text


def is_ignored(event: dict[str, Any], bot_user_id: str) -> bool:
    """Events that must never be answered: any bot (ourselves included), any subtype
    other than HUMAN_SUBTYPES (edits, deletions, joins), and events without a human
    author."""
    if event.get("bot_id") or event.get("bot_profile"):
        return True
    if event.get("subtype") and event["subtype"] not in HUMAN_SUBTYPES:
        return True
    user = event.get("user")
    return not user or user == bot_user_id


def is_reset(text: str) -> bool:
    """`reset` (any case, surrounding spaces allowed) starts a new DM conversation."""
    return text.strip().lower() == RESET_COMMAND


def route_event(body: dict[str, Any], bot_user_id: str) -> Incoming | None:
    """Classify an Events API body (`event_callback`); None means ignore it.

    Rules: `app_mention` is answered in its thread (or starts one on the message). A
    `message` in a DM is answered: in its thread when it has one, else at the top level
    with one conversation per DM channel; `reset` there forgets the conversation. A
    `message` in a channel thread is a follow-up, answered only if the bot already
    answered in that thread; a top-level channel message is `AUTO`, answered in a new
    thread only where a route turns on auto-answer; one that mentions the bot is left to
    `app_mention` so the question is answered once.
    """
    event = body.get("event") or {}
    kind = event.get("type")
    if kind not in ("app_mention", "message") or is_ignored(event, bot_user_id):
        return None
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    if not channel or not ts:
        return None
    team_id = str(body.get("team_id") or event.get("team") or "")
    thread_ts = event.get("thread_ts")
    text = strip_mention(str(event.get("text") or ""), bot_user_id)
    is_dm = kind == "message" and event.get("channel_type") in DM_CHANNEL_TYPES

    if kind == "app_mention":
        route, reply_ts, thread = Route.ANSWER, thread_ts or ts, thread_ts or ts
    elif is_dm:
        route = Route.RESET if is_reset(text) else Route.ANSWER
        reply_ts, thread = thread_ts, thread_ts or channel
    else:
        in_thread = bool(thread_ts) and thread_ts != ts
        if mentions_bot(str(event.get("text") or ""), bot_user_id):
            return None
        if in_thread:
            route, reply_ts, thread = Route.FOLLOW_UP, thread_ts, thread_ts
        elif event.get("channel_type") in AUTO_CHANNEL_TYPES:
            route, reply_ts, thread = Route.AUTO, ts, ts
        else:
            return None

    question = Question(
        thread=ThreadKey(platform=PLATFORM, workspace=team_id, channel=channel, thread=thread),
        user_id=str(event["user"]),
        text=text,
        event_id=str(body.get("event_id") or f"{channel}:{ts}"),
        is_dm=is_dm,
    )
    return Incoming(
        route=route, question=question, team_id=team_id, reply_thread_ts=reply_ts, message_ts=ts
    )
