"""End to end: `/ask private:true` streams an ephemeral answer through the interaction's
edits, with a "Share in channel" button that posts the finished answer publicly,
attributed to the person who pressed it."""

# ruff: noqa: F811 (the fake and mock fixtures come from test_discord_e2e)
from __future__ import annotations

from pathlib import Path

import pytest
from test_discord_e2e import fake, finished, mock, running_bridge  # noqa: F401 (fixtures)

from bridge.private import SHARE_LABEL, SHARED_NOTICE
from bridge.testing import discord_rules as rules
from bridge.testing.fake_discord import FLAG_EPHEMERAL, FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(60)


def answered(fake: FakeDiscord, token: str) -> bool:
    messages = fake.interaction_messages(token)
    return bool(messages) and finished(messages[0])


async def test_private_ask_is_ephemeral_and_can_be_shared(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        asked = await fake.run_command(
            "ask", {"question": "our secret plan", "private": True}, channel_id=fake.channel_id
        )
        token = asked["token"]
        await fake.wait_for(
            lambda: (
                fake.interaction_messages(token) and finished(fake.interaction_messages(token)[0])
            )
        )
        [answer] = fake.interaction_messages(token)
        assert answer["flags"] & FLAG_EPHEMERAL
        assert fake.interaction_callbacks(token)[0]["data"]["flags"] & FLAG_EPHEMERAL
        assert len(fake.requests_to("PATCH", r"/messages/@original$")) >= 2  # streamed
        assert fake.public_messages_in(fake.channel_id) == []
        [button] = fake.buttons(answer["id"])
        assert button["label"] == SHARE_LABEL

        pressed = await fake.press_button(answer["id"], button["custom_id"], user=fake.bob)
        await fake.wait_for(lambda: fake.public_messages_in(fake.channel_id))
        [shared] = fake.public_messages_in(fake.channel_id)
        assert shared["content"].startswith("*Shared by bob:*")
        assert "our secret plan" in shared["content"]
        assert "https://docs.example.com/" in shared["content"]  # the sources come along
        assert shared["allowed_mentions"] == {"parse": []}
        [notice] = await fake.wait_for(
            lambda: [
                m
                for m in fake.interaction_messages(pressed["token"])
                if m["content"] == SHARED_NOTICE
            ]
        )
        assert notice["flags"] & FLAG_EPHEMERAL


async def test_private_ask_in_a_thread_keeps_its_own_conversation(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        thread_id = await fake.user_thread("Team thread")
        public = await fake.run_command("ask", {"question": "public one"}, channel_id=thread_id)
        await fake.wait_for(lambda: answered(fake, public["token"]))
        private = await fake.run_command(
            "ask", {"question": "private one", "private": True}, channel_id=thread_id
        )
        await fake.wait_for(lambda: answered(fake, private["token"]))
        assert "chatlogId" not in mock.requests[1].json  # not the thread's conversation


async def test_share_where_the_bot_may_not_post_says_so(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        asked = await fake.run_command(
            "ask", {"question": "private", "private": True}, channel_id=fake.channel_id
        )
        await fake.wait_for(lambda: answered(fake, asked["token"]))
        [answer] = fake.interaction_messages(asked["token"])
        [button] = fake.buttons(answer["id"])
        fake.revoke(rules.SEND_MESSAGES)
        pressed = await fake.press_button(answer["id"], button["custom_id"])
        await fake.wait_for(
            lambda: any(
                "could not post" in m["content"]
                for m in fake.interaction_messages(pressed["token"])
            )
        )
        assert fake.public_messages_in(fake.channel_id) == []
        assert [r.code for r in fake.refusals] == [50013]  # the refusal this test asked for
        fake.refusals.clear()
