"""Slack "Ask <bot> about this": a message shortcut for questions about one message.

Choosing the shortcut on a message opens a small modal (`views.open`, within the
trigger's 3 seconds) whose question is prefilled with "Explain this". On submit, the
answer goes in that message's thread, with the message sent as context every turn (it
is the subject of the question, not background). The message travels in the modal's
`private_metadata` (Slack allows 3,000 characters, so a long message is cut there, as
the context cap would cut it anyway): no extra scope, nothing kept in memory, and a
submission handled by another process still works.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bridge.context import CONTEXT_MESSAGE_CHARS, fixed_context
from bridge.errors import BridgeError
from bridge.model import Question, ThreadKey
from bridge.slack.api import SlackApi
from bridge.slack.events import PLATFORM
from bridge.slack.surface import ReplyTarget
from bridge.slack.thread_context import to_context

log = logging.getLogger(__name__)

SHORTCUT_CALLBACK_ID = "ask_about_message"  # manifests/slack*.yaml: features.shortcuts
VIEW_CALLBACK_ID = "ask_about_message_modal"
QUESTION_BLOCK = "question"
QUESTION_ACTION = "question_input"
DEFAULT_QUESTION = "Explain this"
MODAL_TITLE = "Ask about this"  # Slack: modal titles ≤ 24 characters
PRIVATE_METADATA_LIMIT = 3000
QUESTION_INPUT_LIMIT = 3000  # Slack's plain_text_input max_length

Answer = Callable[[Question, ReplyTarget], None]
Identity = Callable[[], tuple[str, str]]  # (bot user id, bot id)


def message_metadata(payload: dict[str, Any]) -> str:
    """The shortcut's message (where it is, who wrote it, its text and files) as the
    modal's private_metadata, cut to fit Slack's limit."""
    message = payload.get("message") or {}
    meta = {
        "channel": str((payload.get("channel") or {}).get("id") or ""),
        "ts": str(message.get("ts") or payload.get("message_ts") or ""),
        "thread_ts": str(message.get("thread_ts") or message.get("ts") or ""),
        "message": {
            key: message[key]
            for key in ("user", "bot_id", "user_profile", "bot_profile")
            if key in message
        }
        | {
            "text": str(message.get("text") or "")[:CONTEXT_MESSAGE_CHARS],
            "files": [
                {"name": f.get("name") or f.get("title")} for f in message.get("files") or ()
            ],
        },
    }
    encoded = json.dumps(meta, ensure_ascii=False)
    while len(encoded) > PRIVATE_METADATA_LIMIT and meta["message"]["text"]:
        text = meta["message"]["text"]
        meta["message"]["text"] = text[: len(text) * 3 // 4]
        encoded = json.dumps(meta, ensure_ascii=False)
    return encoded


def question_modal(private_metadata: str) -> dict[str, Any]:
    """The small modal: one multi-line input prefilled with DEFAULT_QUESTION."""
    return {
        "type": "modal",
        "callback_id": VIEW_CALLBACK_ID,
        "title": {"type": "plain_text", "text": MODAL_TITLE},
        "submit": {"type": "plain_text", "text": "Ask"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": private_metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": QUESTION_BLOCK,
                "label": {"type": "plain_text", "text": "Your question about the message"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": QUESTION_ACTION,
                    "multiline": True,
                    "initial_value": DEFAULT_QUESTION,
                    "max_length": QUESTION_INPUT_LIMIT,
                },
            }
        ],
    }


def submitted_question(view: dict[str, Any]) -> str:
    """The question typed in the modal (DEFAULT_QUESTION when left empty)."""
    values = ((view.get("state") or {}).get("values") or {}).get(QUESTION_BLOCK) or {}
    value = (values.get(QUESTION_ACTION) or {}).get("value")
    return str(value).strip() if value and str(value).strip() else DEFAULT_QUESTION


class AskAboutMessage:
    """The shortcut and modal handlers; `answer` draws the answer (the adapter's)."""

    def __init__(self, api: SlackApi, answer: Answer, identity: Identity) -> None:
        self._api = api
        self._answer = answer
        self._identity = identity

    def register(self, app: AsyncApp) -> None:
        app.shortcut(SHORTCUT_CALLBACK_ID)(self._on_shortcut)
        app.view(VIEW_CALLBACK_ID)(self._on_submit)

    async def _on_shortcut(self, ack: Callable[..., Any], body: dict[str, Any]) -> None:
        await ack()
        try:
            await self._api.call(
                "views.open",
                trigger_id=body.get("trigger_id"),
                view=question_modal(message_metadata(body)),
            )
        except BridgeError as exc:  # an expired trigger: the person can simply try again
            log.warning("could not open the 'ask about this' modal: %s", exc)

    async def _on_submit(self, ack: Callable[..., Any], body: dict[str, Any]) -> None:
        await ack()  # closes the modal; the answer appears in the message's thread
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            log.warning("'ask about this' submission without its message ignored")
            return
        channel, thread_ts = str(meta.get("channel") or ""), str(meta.get("thread_ts") or "")
        user = str((body.get("user") or {}).get("id") or "")
        team = str((body.get("team") or {}).get("id") or view.get("team_id") or "")
        if not channel or not thread_ts or not user:
            log.warning("'ask about this' submission without its message ignored")
            return
        bot_user_id, bot_id = self._identity()
        subject = to_context(meta.get("message") or {}, bot_user_id=bot_user_id, bot_id=bot_id)
        question = Question(
            thread=ThreadKey(PLATFORM, team, channel, thread_ts),
            user_id=user,
            text=submitted_question(view),
            event_id=f"view:{view.get('id') or meta.get('ts')}",
            context=fixed_context([subject]),
        )
        self._answer(question, ReplyTarget(team, channel, thread_ts, user))
