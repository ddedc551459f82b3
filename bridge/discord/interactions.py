"""Buttons and the "what was wrong?" modal on Discord answers.

A finished answer (`done`) gets 👍/👎 on its last message (and "Talk to a person" in
servers where a hand-off role is configured). The buttons are discord.py
`DynamicItem`s: their stable `custom_id`s (`bridge:vote:up:<turn>`, …) carry the answer
they belong to, and `client.add_dynamic_items` at start-up routes presses to them, so
buttons on messages from before a restart keep working.

Every press is acknowledged privately (an ephemeral interaction response). A 👎's
response offers "What was wrong?", which opens a modal; a hand-off press answers with
the one message that mentions the configured role, and only it (`allowed_mentions`).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bridge.discord.surface import NO_MENTIONS, guarded
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
from bridge.store import VoteValue

if TYPE_CHECKING:
    from bridge.model import Question

log = logging.getLogger(__name__)

PLATFORM = "discord"
TURN = r"(?P<turn>[0-9]{1,30})"  # Discord turns are keyed by snowflakes
EMOJI = {VoteValue.UP: "👍", VoteValue.DOWN: "👎"}
REASON_PROMPT = "What was wrong?"


def _services(interaction: discord.Interaction) -> DiscordInteractions:
    """The handlers, which the adapter hangs on its client (dynamic items are built by
    discord.py from a `custom_id`, so they cannot be handed anything else)."""
    return interaction.client.bridge_interactions  # type: ignore[attr-defined, no-any-return]


class _AnswerButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)"):
    """A button whose `custom_id` is `bridge:<action>:<turn>`; subclasses name the
    action (their `template`) and what a press does. The base template matches nothing:
    only the subclasses are registered."""

    action = ""
    label: str | None = None
    style = discord.ButtonStyle.secondary

    def __init__(self, event_id: str, *, emoji: str | None = None, action: str = "") -> None:
        super().__init__(
            discord.ui.Button(
                style=self.style,
                label=self.label,
                emoji=emoji,
                custom_id=f"bridge:{action or self.action}:{event_id}",
            )
        )
        self.event_id = event_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> _AnswerButton:
        return cls(match["turn"])


class VoteButton(_AnswerButton, template=rf"bridge:vote:(?P<vote>up|down):{TURN}"):
    def __init__(self, vote: VoteValue, event_id: str) -> None:
        super().__init__(event_id, emoji=EMOJI[vote], action=f"vote:{vote.value}")
        self.vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VoteButton:
        return cls(VoteValue(match["vote"]), match["turn"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _services(interaction).on_vote(interaction, self.vote, self.event_id)


class ReasonButton(_AnswerButton, template=rf"bridge:why:{TURN}"):
    """On the private 👎 acknowledgement: opens the "what was wrong?" modal."""

    action, label = "why", REASON_PROMPT

    async def callback(self, interaction: discord.Interaction) -> None:
        modal = ReasonModal(_services(interaction).feedback, self.event_id)
        try:
            await guarded(interaction.response.send_modal(modal))
        except BridgeError as exc:
            log.info("could not open the reason box: %s", exc)


class HandoffButton(_AnswerButton, template=rf"bridge:handoff:{TURN}"):
    action, label, style = "handoff", "Talk to a person", discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        await _services(interaction).on_handoff(interaction, self.event_id)


class ResumeButton(_AnswerButton, template=rf"bridge:resume:{TURN}"):
    action, label = "resume", "Back to the bot"

    async def callback(self, interaction: discord.Interaction) -> None:
        await _services(interaction).on_resume(interaction, self.event_id)


DYNAMIC_ITEMS = (VoteButton, ReasonButton, HandoffButton, ResumeButton)


class ReasonModal(discord.ui.Modal):
    """The optional "what was wrong?" box of one 👎."""

    def __init__(self, feedback: FeedbackService, event_id: str) -> None:
        super().__init__(title=REASON_PROMPT, custom_id=f"bridge:reason:{event_id}")
        self._feedback = feedback
        self._event_id = event_id
        self.reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
            label="What was wrong with the answer?",
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=MAX_REASON_CHARS,
        )
        self.add_item(self.reason)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        text = await self._feedback.give_reason(
            PLATFORM, self._event_id, str(interaction.user.id), self.reason.value or ""
        )
        await _reply(interaction, text)


def answer_view(event_id: str, *, handoff: bool) -> discord.ui.View:
    """The buttons under an answer (persistent: no timeout)."""
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(VoteValue.UP, event_id))
    view.add_item(VoteButton(VoteValue.DOWN, event_id))
    if handoff:
        view.add_item(HandoffButton(event_id))
    return view


def _single(item: discord.ui.Item[Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(item)
    return view


async def _reply(
    interaction: discord.Interaction, text: str, *, view: discord.ui.View | None = None
) -> None:
    """An ephemeral response only the presser sees; failures are logged."""
    try:
        await guarded(
            interaction.response.send_message(
                text,
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
                **({"view": view} if view is not None else {}),
            )
        )
    except BridgeError as exc:
        log.warning("could not acknowledge a button press: %s", exc)


class DiscordInteractions:
    """What the buttons do; reached from the client as `client.bridge_interactions`."""

    def __init__(self, feedback: FeedbackService, handoffs: Handoffs) -> None:
        self.feedback = feedback
        self._handoffs = handoffs

    def install(self, client: discord.Client) -> None:
        """Route presses on every answer's buttons, including those posted before a
        restart, to this object."""
        client.bridge_interactions = self  # type: ignore[attr-defined]
        client.add_dynamic_items(*DYNAMIC_ITEMS)

    def view_for(self, question: Question) -> discord.ui.View:
        """The buttons for an answer to `question` (hand-off only in servers)."""
        in_server = not question.is_dm and question.thread.workspace != "@dm"
        handoff = in_server and self._handoffs.target(PLATFORM) is not None
        return answer_view(question.event_id, handoff=handoff)

    async def on_vote(
        self, interaction: discord.Interaction, vote: VoteValue, event_id: str
    ) -> None:
        message = interaction.message
        result = await self.feedback.vote(
            PLATFORM,
            event_id,
            str(interaction.user.id),
            vote,
            channel=str(interaction.channel_id),
            message_id=str(message.id) if message is not None else "",
        )
        offer = _single(ReasonButton(event_id)) if result.ask_reason else None
        await _reply(interaction, result.text, view=offer)

    async def on_handoff(self, interaction: discord.Interaction, event_id: str) -> None:
        role = self._handoffs.target(PLATFORM)
        if role is None:
            await _reply(interaction, HANDOFF_OFF_TEXT)
            return
        message = interaction.message
        turn = await self.feedback.answer_for(
            PLATFORM,
            event_id,
            channel=str(interaction.channel_id),
            message_id=str(message.id) if message is not None else "",
        )
        if isinstance(turn, str):
            await _reply(interaction, turn)
            return
        if not await self._handoffs.start(turn.thread, str(interaction.user.id), event_id):
            await _reply(interaction, ALREADY_HANDED_OFF_TEXT)
            return
        # The one mention the bot ever makes: the configured role, and nothing else.
        only_the_role = discord.AllowedMentions(
            everyone=False, users=False, roles=[discord.Object(int(role))], replied_user=False
        )
        try:
            await guarded(
                interaction.response.send_message(
                    HANDOFF_TEXT.format(mention=f"<@&{role}>"),
                    allowed_mentions=only_the_role,
                    view=_single(ResumeButton(event_id)),
                )
            )
        except BridgeError as exc:
            log.warning("could not post the hand-off message: %s", exc)

    async def on_resume(self, interaction: discord.Interaction, event_id: str) -> None:
        thread = await self._handoffs.thread_of(
            PLATFORM, event_id, channel=str(interaction.channel_id)
        )
        if thread is None:
            await _reply(interaction, UNKNOWN_ANSWER_TEXT)
            return
        if not await self._handoffs.end(thread, str(interaction.user.id)):
            await _reply(interaction, NOT_HANDED_OFF_TEXT)
            return
        try:
            await guarded(
                interaction.response.send_message(RESUMED_TEXT, allowed_mentions=NO_MENTIONS)
            )
        except BridgeError as exc:
            log.warning("could not confirm the resume: %s", exc)
