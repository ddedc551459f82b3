"""End to end: the "Ask bot" message context-menu command opens a modal prefilled with
"Explain this"; the answer comes as a reply to the message (or in its thread), with the
message sent as context."""

# ruff: noqa: F811 (the fake and mock fixtures come from test_discord_e2e)
from __future__ import annotations

from pathlib import Path

import pytest
from test_discord_e2e import fake, final_answer, mock, running_bridge  # noqa: F401 (fixtures)

from bridge.discord.ask_message import ASK_MENU_NAME, DEFAULT_QUESTION
from bridge.testing.fake_discord import COMMAND_MESSAGE, FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(60)


def text_inputs(modal: dict) -> list[dict]:
    found = []
    for row in modal["components"]:
        inner = row.get("components") or [row.get("component") or {}]
        found.extend(c for c in inner if c.get("type") == 4)
    return found


async def test_ask_bot_replies_to_the_message_with_it_as_context(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        registered = fake.commands["global"]
        assert any(c["name"] == ASK_MENU_NAME and c["type"] == COMMAND_MESSAGE for c in registered)
        target = fake.store_user_message(
            fake.channel_id,
            f"Deploys fail with E42 @everyone, ask <@{fake.alice['id']}>",
            author=fake.bob,
            mentions=[fake.alice],
            files=("e42.png",),
        )
        opened = await fake.run_message_command(ASK_MENU_NAME, target["id"])
        modal = await fake.wait_for(lambda: fake.modal_of(opened["token"]))
        [field] = text_inputs(modal)
        assert field["value"] == DEFAULT_QUESTION

        submitted = await fake.submit_modal(opened["token"])
        answer = await fake.wait_for(lambda: final_answer(fake, fake.channel_id), within=20)
        assert answer["message_reference"]["message_id"] == target["id"]
        assert fake.interaction_callbacks(submitted["token"])[0]["data"]["flags"] & 64  # ephemeral
        body = mock.requests[0].json
        assert body["question"] == DEFAULT_QUESTION
        context = body["context"]
        assert context.endswith(
            "bob: Deploys fail with E42 @\u200beveryone, ask @alice [file: e42.png]"
        )
        assert "<@" not in context


async def test_ask_bot_in_a_thread_answers_there_with_the_typed_question(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        thread_id = await fake.user_thread("Deploy trouble")
        target = fake.store_user_message(thread_id, "It broke at 10:02", author=fake.bob)
        opened = await fake.run_message_command(ASK_MENU_NAME, target["id"])
        modal = await fake.wait_for(lambda: fake.modal_of(opened["token"]))
        [field] = text_inputs(modal)
        await fake.submit_modal(opened["token"], {field["custom_id"]: "Why at 10:02?"})
        await fake.wait_for(lambda: final_answer(fake, thread_id), within=20)
        body = mock.requests[0].json
        assert body["question"] == "Why at 10:02?"
        assert body["context"].endswith("bob: It broke at 10:02")
