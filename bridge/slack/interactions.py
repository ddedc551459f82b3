"""Buttons and the "what was wrong?" modal on Slack answers.

A finished answer (`done`) gets 👍/👎 on its last message: Slack's native
`feedback_buttons` in a `context_actions` block, or plain `actions` buttons in a
workspace that refuses that block (remembered per workspace). Where a hand-off group is
configured, answers in channels also get "Talk to a person"; the hand-off message
carries "Back to the bot".

Presses arrive as `block_actions`, the modal as `view_submission`, over Socket Mode or
signed HTTP on the events route, both through bolt. Every handler acks first (Slack
allows 3 s, and a `trigger_id` opens a modal only within 3 s), then acts; each press is
acknowledged privately with an ephemeral message.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bridge.errors import BridgeError
from bridge.feedback import MAX_REASON_CHARS, FeedbackService, Handoffs
from bridge.feedback.handoff import (
    ALREADY_HANDED_OFF_TEXT,
    HANDOFF_OFF_TEXT,
    HANDOFF_TEXT,
    NOT_HANDED_OFF_TEXT,
    RESUMED_TEXT,
)
from bridge.feedback.service import UNKNOWN_ANSWER_TEXT
from bridge.model import ThreadKey
from bridge.pacing import Priority
from bridge.slack.api import SlackApi, SlackCallError
from bridge.slack.budget import POST, UPDATE
from bridge.slack.events import PLATFORM
from bridge.slack.surface import ReplyTarget, message_fields
from bridge.store import Turn, VoteValue

log = logging.getLogger(__name__)

VOTE_ACTION = "bridge_vote"  # native feedback_buttons: one action id, the value says which
VOTE_BUTTON_ACTIONS = {VoteValue.UP: "bridge_vote_up", VoteValue.DOWN: "bridge_vote_down"}
VOTE_ACTIONS = re.compile(r"^bridge_vote(_up|_down)?$")
HANDOFF_ACTION = "bridge_handoff"
RESUME_ACTION = "bridge_resume"
REASON_CALLBACK = "bridge_reason"
REASON_BLOCK, REASON_INPUT = "reason", "text"
# What Slack answers when a workspace does not know a block type.
REFUSED_BLOCK_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format"})
LABELS = {VoteValue.UP: "This answer helped", VoteValue.DOWN: "This answer did not help"}


def vote_value(vote: VoteValue, event_id: str) -> str:
    """A button's value: the vote and the answer (turn) it judges."""
    return f"{vote.value}:{event_id}"


def parse_vote_value(value: str) -> tuple[VoteValue, str] | None:
    """(vote, turn event id) from a button value; None for anything else (forged)."""
    vote, _, event_id = value.partition(":")
    if vote not in (VoteValue.UP.value, VoteValue.DOWN.value) or not event_id:
        return None
    return VoteValue(vote), event_id


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _button(action_id: str, text: str, value: str, *, label: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(text),
        "value": value,
    }
    if label:
        button["accessibility_label"] = label
    return button


def feedback_blocks(event_id: str, *, native: bool, handoff: bool) -> list[dict[str, Any]]:
    """The blocks added under an answer's text."""
    handoff_button = _button(HANDOFF_ACTION, "Talk to a person", event_id)
    if not native:
        buttons = [
            _button(
                VOTE_BUTTON_ACTIONS[vote], emoji, vote_value(vote, event_id), label=LABELS[vote]
            )
            for vote, emoji in ((VoteValue.UP, "👍"), (VoteValue.DOWN, "👎"))
        ]
        elements = [*buttons, handoff_button] if handoff else buttons
        return [{"type": "actions", "block_id": "bridge_feedback", "elements": elements}]
    native_buttons: dict[str, Any] = {"type": "feedback_buttons", "action_id": VOTE_ACTION}
    for vote, key, emoji in (
        (VoteValue.UP, "positive_button", "👍"),
        (VoteValue.DOWN, "negative_button", "👎"),
    ):
        native_buttons[key] = {
            "text": _plain(emoji),
            "value": vote_value(vote, event_id),
            "accessibility_label": LABELS[vote],
        }
    blocks: list[dict[str, Any]] = [
        {"type": "context_actions", "block_id": "bridge_feedback", "elements": [native_buttons]}
    ]
    if handoff:
        blocks.append(
            {"type": "actions", "block_id": "bridge_handoff", "elements": [handoff_button]}
        )
    return blocks


def reason_modal(event_id: str, channel: str, thread_ts: str | None) -> dict[str, Any]:
    """The optional "what was wrong?" box; `private_metadata` says which vote it is for
    and where to acknowledge it."""
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "title": _plain("What was wrong?"),
        "submit": _plain("Send"),
        "close": _plain("Skip"),
        "private_metadata": json.dumps({"e": event_id, "c": channel, "t": thread_ts}),
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": _plain("What was wrong with the answer? (optional)"),
                "hint": _plain(f"Up to {MAX_REASON_CHARS:,} characters."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            }
        ],
    }


class FeedbackButtons:
    """Adds the buttons to an answer's last message, falling back to plain buttons in
    workspaces that refuse `context_actions` (remembered for later answers)."""

    def __init__(self, api: SlackApi, handoffs: Handoffs) -> None:
        self._api = api
        self._handoffs = handoffs
        self._plain_only: set[str] = set()

    async def attach(self, target: ReplyTarget, message_id: str, text: str, event_id: str) -> None:
        """Best effort: a failure only costs the buttons (logged)."""
        handoff = self._handoffs.target(PLATFORM) is not None and target.conversation_kind != "dm"
        native = target.team_id not in self._plain_only
        try:
            await self._update(target, message_id, text, event_id, native=native, handoff=handoff)
        except SlackCallError as exc:
            if not native or exc.error not in REFUSED_BLOCK_ERRORS:
                log.warning("could not add feedback buttons: %s", exc)
                return
            log.info("workspace %s refuses feedback_buttons; using plain buttons", target.team_id)
            self._plain_only.add(target.team_id)
            await self.attach(target, message_id, text, event_id)
        except BridgeError as exc:
            log.warning("could not add feedback buttons: %s", exc)

    async def _update(
        self,
        target: ReplyTarget,
        message_id: str,
        text: str,
        event_id: str,
        *,
        native: bool,
        handoff: bool,
    ) -> None:
        fields = message_fields(text)
        fields["blocks"] += feedback_blocks(event_id, native=native, handoff=handoff)
        await self._api.call(
            "chat.update",
            team_id=target.team_id,
            budget=UPDATE,
            priority=Priority.PROGRESS,  # after every waiting answer's final (pacing)
            channel=target.channel,
            ts=message_id,
            **fields,
        )


class SlackInteractions:
    """The bolt handlers for votes, the reason modal, hand-off and resume."""

    def __init__(
        self, app: AsyncApp, api: SlackApi, feedback: FeedbackService, handoffs: Handoffs
    ) -> None:
        self._api = api
        self._feedback = feedback
        self._handoffs = handoffs
        app.action(VOTE_ACTIONS)(self._on_vote)
        app.action(HANDOFF_ACTION)(self._on_handoff)
        app.action(RESUME_ACTION)(self._on_resume)
        app.view(REASON_CALLBACK)(self._on_reason)

    async def _on_vote(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = _Press.of(body)
        parsed = parse_vote_value(press.value)
        if parsed is None:
            await self._tell(press, UNKNOWN_ANSWER_TEXT)
            return
        vote, event_id = parsed
        result = await self._feedback.vote(
            PLATFORM,
            event_id,
            press.user,
            vote,
            channel=press.channel,
            message_id=press.message_ts,
        )
        if result.ask_reason and press.trigger_id:
            await self._open_reason(press, event_id)
        await self._tell(press, result.text)

    async def _open_reason(self, press: _Press, event_id: str) -> None:
        try:
            await self._api.call(
                "views.open",
                trigger_id=press.trigger_id,
                view=reason_modal(event_id, press.channel, press.thread_ts),
            )
        except BridgeError as exc:  # an expired trigger only costs the optional box
            log.info("could not open the reason box: %s", exc)

    async def _on_reason(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        view = body.get("view") or {}
        try:
            where = json.loads(view.get("private_metadata") or "{}")
            event_id, channel = str(where["e"]), str(where["c"])
        except (ValueError, KeyError, TypeError):
            log.info("reason box with unreadable metadata ignored")
            return
        values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
        reason = str((values.get(REASON_INPUT) or {}).get("value") or "")
        user = str((body.get("user") or {}).get("id") or "")
        text = await self._feedback.give_reason(PLATFORM, event_id, user, reason)
        team = str((body.get("team") or {}).get("id") or "")
        await self._tell(_Press(team, channel, user, "", where.get("t")), text)

    async def _on_handoff(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = _Press.of(body)
        group = self._handoffs.target(PLATFORM)
        if group is None:
            await self._tell(press, HANDOFF_OFF_TEXT)
            return
        turn = await self._feedback.answer_for(
            PLATFORM, press.value, channel=press.channel, message_id=press.message_ts
        )
        if isinstance(turn, str):
            await self._tell(press, turn)
            return
        if not await self._handoffs.start(turn.thread, press.user, turn.event_id):
            await self._tell(press, ALREADY_HANDED_OFF_TEXT)
            return
        await self._post_handoff(press, turn, group)

    async def _post_handoff(self, press: _Press, turn: Turn, group: str) -> None:
        """The one message that notifies the configured group: `<!subteam^…>` is written
        here from the configured id, never from user or backend text."""
        text = HANDOFF_TEXT.format(mention=f"<!subteam^{group}>")
        resume = _button(RESUME_ACTION, "Back to the bot", turn.event_id)
        await self._say(
            press.team,
            turn.thread,
            text=text,
            blocks=[
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "actions", "block_id": "bridge_resume", "elements": [resume]},
            ],
        )

    async def _on_resume(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = _Press.of(body)
        thread = await self._handoffs.thread_of(PLATFORM, press.value, channel=press.channel)
        if thread is None:
            await self._tell(press, UNKNOWN_ANSWER_TEXT)
            return
        if not await self._handoffs.end(thread, press.user):
            await self._tell(press, NOT_HANDED_OFF_TEXT)
            return
        await self._say(press.team, thread, **message_fields(RESUMED_TEXT))

    async def _say(self, team: str, thread: ThreadKey, **fields: Any) -> None:
        """A message everyone in the thread sees; failures are logged."""
        try:
            await self._api.call(
                "chat.postMessage",
                team_id=team,
                budget=POST,  # paced per channel like every post
                channel=thread.channel,
                thread_ts=thread.thread,
                **fields,
            )
        except BridgeError as exc:
            log.warning("could not post in thread %s: %s", thread.thread, exc)

    async def _tell(self, press: _Press, text: str) -> None:
        """An ephemeral note only the presser sees; failures are logged."""
        try:
            await self._api.call(
                "chat.postEphemeral",
                team_id=press.team,
                channel=press.channel,
                user=press.user,
                thread_ts=press.thread_ts,
                **message_fields(text),
            )
        except BridgeError as exc:
            log.warning("could not acknowledge a button press: %s", exc)


@dataclass(frozen=True)
class _Press:
    """The parts of a `block_actions` payload the handlers use."""

    team: str
    channel: str
    user: str
    message_ts: str
    thread_ts: str | None
    value: str = ""
    trigger_id: str = ""

    @classmethod
    def of(cls, body: dict[str, Any]) -> _Press:
        message = body.get("message") or {}
        container = body.get("container") or {}
        action = (body.get("actions") or [{}])[0]
        return cls(
            team=str((body.get("team") or {}).get("id") or ""),
            channel=str((body.get("channel") or {}).get("id") or container.get("channel_id") or ""),
            user=str((body.get("user") or {}).get("id") or ""),
            message_ts=str(container.get("message_ts") or message.get("ts") or ""),
            thread_ts=message.get("thread_ts") or container.get("thread_ts"),
            value=str(action.get("value") or ""),
            trigger_id=str(body.get("trigger_id") or ""),
        )
