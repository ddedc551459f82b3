"""Auto-answer channels on Discord (a route with mode = "all"), end to end: ordinary
messages in a text channel and new posts in a forum are answered without a mention, in
their own thread; bots never are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_discord_e2e import backend_questions, final_answer, finished_count, running_bridge

from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(60)


def auto_routes(tmp_path: Path, fake: FakeDiscord, *channels: str) -> str:
    path = tmp_path / "routes.toml"
    path.write_text(
        "".join(
            f'[[route]]\nplatform = "discord"\nguild = "{fake.guild_id}"\n'
            f'channel = "{channel}"\nmode = "all"\n\n'
            for channel in channels
        )
    )
    return str(path)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(delay=0.005) as server:
        yield server


async def test_auto_answer_channel_answers_a_plain_message_in_a_new_thread(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    routes = auto_routes(tmp_path, fake, fake.channel_id)
    other_bot = fake.make_user("other-bot", bot=True)
    async with running_bridge(
        fake, mock, tmp_path, discord_message_content=True, bridge_routes_file=routes
    ):
        await fake.user_message(fake.channel_id, "a bot talking", author=other_bot)
        question = await fake.user_message(fake.channel_id, "How do refunds work?")
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        await fake.wait_for(lambda: final_answer(fake, thread["id"]))
        await fake.user_message(thread["id"], "And for annual plans?")
        await fake.wait_for(lambda: finished_count(fake, thread["id"]) == 2)
    first, second = backend_questions(mock)
    assert first["question"] == "How do refunds work?"
    assert second["question"] == "And for annual plans?" and second["chatlogId"]
    assert len(fake.threads) == 1  # the other bot's message got nothing


async def test_a_new_forum_post_is_answered_in_its_own_thread(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    forum = fake.add_forum()
    routes = auto_routes(tmp_path, fake, forum)
    async with running_bridge(
        fake, mock, tmp_path, discord_message_content=True, bridge_routes_file=routes
    ):
        post = await fake.user_forum_post(forum, "Refunds", "Can I get a refund?")
        await fake.wait_for(lambda: final_answer(fake, post["id"]))
        second_post = await fake.user_forum_post(forum, "Invoices", "Where are my invoices?")
        await fake.wait_for(lambda: final_answer(fake, second_post["id"]))
        await fake.user_message(post["id"], "Even after 30 days?")
        await fake.wait_for(lambda: finished_count(fake, post["id"]) == 2)
    questions = backend_questions(mock)
    assert [q["question"] for q in questions] == [
        "Can I get a refund?",
        "Where are my invoices?",
        "Even after 30 days?",
    ]
    assert "chatlogId" not in questions[1]  # each post is its own conversation
    assert questions[2]["chatlogId"]  # the follow-up continues its post's conversation
    assert not fake.bot_messages_in(forum)
    assert set(fake.threads) == {post["id"], second_post["id"]}  # no thread of our own


async def test_without_a_route_plain_messages_and_forum_posts_are_not_answered(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    forum = fake.add_forum()
    async with running_bridge(fake, mock, tmp_path, discord_message_content=True):
        await fake.user_message(fake.channel_id, "just chatting")
        post = await fake.user_forum_post(forum, "Hello", "anyone here?")
        mention = await fake.user_message(fake.channel_id, "and you?", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.threads.get(mention["id"]))
        await fake.wait_for(lambda: final_answer(fake, thread["id"]))
    assert [q["question"] for q in backend_questions(mock)] == ["and you?"]
    assert not fake.bot_messages_in(post["id"])
