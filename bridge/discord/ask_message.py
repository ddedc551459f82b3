"""Discord "Ask bot": a message context-menu command for questions about one message.

Apps → "Ask bot" on a message opens a small modal prefilled with "Explain this"; on
submit the answer goes in the thread (when the message is in one) or as a reply to the
message, with the message sent as context every turn. The modal lives in this process's
memory (discord.py's view store) for the interaction token's 15 minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from bridge.discord.surface import guarded
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

ASK_MENU_NAME = "Ask bot"
MODAL_TITLE = "Ask about this message"
DEFAULT_QUESTION = "Explain this"
QUESTION_LABEL = "Your question about the message"
QUESTION_INPUT_LIMIT = 2000  # a Discord text input holds at most 4,000; a question less
MODAL_TIMEOUT_SECONDS = 15 * 60  # the interaction token's life: no point waiting longer

OnQuestion = Callable[[discord.Interaction, discord.Message, str], Awaitable[None]]


class AskModal(discord.ui.Modal):
    """One paragraph input; submitting hands the question to `on_question`."""

    def __init__(self, message: discord.Message, on_question: OnQuestion) -> None:
        super().__init__(title=MODAL_TITLE, timeout=MODAL_TIMEOUT_SECONDS)
        self._message = message
        self._on_question = on_question
        self.question: discord.ui.TextInput[AskModal] = discord.ui.TextInput(
            label=QUESTION_LABEL,
            style=discord.TextStyle.paragraph,
            default=DEFAULT_QUESTION,
            max_length=QUESTION_INPUT_LIMIT,
        )
        self.add_item(self.question)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        text = self.question.value.strip() or DEFAULT_QUESTION
        await self._on_question(interaction, self._message, text)


def ask_menu(on_question: OnQuestion) -> app_commands.ContextMenu:
    """The "Ask bot" message command; opening the modal is its whole response."""

    async def ask_about(interaction: discord.Interaction, message: discord.Message) -> None:
        try:
            await guarded(interaction.response.send_modal(AskModal(message, on_question)))
        except BridgeError as exc:  # an expired interaction: the person can try again
            log.warning("could not open the 'Ask bot' modal: %s", exc)

    return app_commands.ContextMenu(name=ASK_MENU_NAME, callback=ask_about)
