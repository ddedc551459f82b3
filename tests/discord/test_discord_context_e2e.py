"""End to end: the bot mentioned in someone else's Discord thread, or in a reply chain,
sends the earlier messages with the question (REST history against the fake Discord);
later turns do not; a history fetch Discord refuses costs the context, not the answer."""

# ruff: noqa: F811 (the fake and mock fixtures come from test_discord_e2e)
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from test_discord_e2e import fake, final_answer, mock, running_bridge  # noqa: F401 (fixtures)

from bridge.context import CONTEXT_MAX_MESSAGES
from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(60)

QUESTION = "what's the answer to the question above?"


def backend_settings(mock: MockBackend, backend: str) -> dict[str, Any]:
    if backend == "widget":
        return {
            "bridge_backend": "widget",
            "widget_api_url": mock.url,
            "widget_api_key": mock.api_key,
        }
    return {"bridge_backend": "wonderchat"}


def earlier_of(body: dict[str, Any], backend: str) -> tuple[str, list[str]]:
    if backend == "widget":
        *earlier, last = body["messages"]
        return last["content"], [f"{m['role']}|{m['content']}" for m in earlier]
    context = body.get("context") or ""
    return body["question"], context.split("\n\n")[1:] if context else []


async def thirty_messages(fake: FakeDiscord, thread_id: str) -> None:
    for n in range(29):
        fake.store_user_message(
            thread_id,
            f"Message {n}: ask <@{fake.bob['id']}> or @everyone",
            author=fake.bob if n % 2 else fake.alice,
            mentions=[fake.bob],
        )
    fake.store_user_message(thread_id, "Message 29: see the log", files=("trace.log",))


@pytest.mark.parametrize("backend", ["wonderchat", "widget"])
async def test_mention_in_someone_elses_thread_sends_its_history(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path, backend: str
) -> None:
    overrides = {"discord_message_content": True, **backend_settings(mock, backend)}
    async with running_bridge(fake, mock, tmp_path, **overrides):
        thread_id = await fake.user_thread("Deploy trouble")
        await thirty_messages(fake, thread_id)
        await fake.user_message(thread_id, QUESTION, mention_bot=True)
        await fake.wait_for(lambda: final_answer(fake, thread_id), within=20)

        question, earlier = earlier_of(mock.requests[0].json, backend)
        assert question == QUESTION
        assert len(earlier) == CONTEXT_MAX_MESSAGES
        assert "Message 10:" in earlier[0] and "Message 9:" not in "\n".join(earlier)
        assert earlier[-1].endswith("Message 29: see the log [file: trace.log]")
        sent = "\n".join(earlier)
        assert "<@" not in sent and "@everyone" not in sent and "@bob" in sent
        assert ("user|alice: " if backend == "widget" else "alice: ") in sent

        # A second mention continues the conversation without sending the thread again.
        await fake.user_message(thread_id, "and why?", mention_bot=True)
        await fake.wait_for(lambda: len(mock.requests) == 2 and final_answer(fake, thread_id))
        assert earlier_of(mock.requests[1].json, backend) == ("and why?", [])
        assert len(fake.requests_to("GET", rf"^/channels/{thread_id}/messages$")) == 1


async def test_mention_in_a_reply_chain_sends_the_chain(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_message_content=True):
        first = fake.store_user_message(fake.channel_id, "Is the API down?")
        own = fake.store_user_message(
            fake.channel_id, "An earlier answer", author=fake.bot, reply_to=first["id"]
        )
        second = fake.store_user_message(
            fake.channel_id, "Still failing for me", author=fake.bob, reply_to=own["id"]
        )
        await fake.user_message(fake.channel_id, QUESTION, mention_bot=True, reply_to=second["id"])
        await fake.wait_for(lambda: mock.requests and fake.threads)
        context = mock.requests[0].json["context"]
        assert context.split("\n\n")[1:] == [
            "alice: Is the API down?",
            "assistant: An earlier answer",
            "bob: Still failing for me",
        ]


async def test_history_refused_still_answers(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_message_content=True):
        thread_id = await fake.user_thread("Deploy trouble")
        await thirty_messages(fake, thread_id)
        fake.fail_next("GET", r"/messages$", status=403, code=50001, message="Missing Access")
        with caplog.at_level(logging.WARNING, logger="bridge.context"):
            await fake.user_message(thread_id, QUESTION, mention_bot=True)
            await fake.wait_for(lambda: final_answer(fake, thread_id), within=20)
        assert "context" not in mock.requests[0].json
        assert "earlier messages not sent" in caplog.text and "permission" in caplog.text


async def test_echoed_history_never_pings(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_message_content=True):
        thread_id = await fake.user_thread("Deploy trouble")
        fake.store_user_message(
            thread_id,
            f"@everyone @here <@{fake.bob['id']}> <@&{fake.guild_id}> look",
            mentions=[fake.bob],
        )
        await fake.user_message(thread_id, "[mock:echo-context] repeat", mention_bot=True)

        def echoed() -> list[dict[str, Any]]:
            return [
                m
                for m in fake.bot_messages_in(thread_id)
                if "look" in m["content"] and "▌" not in m["content"]
            ]

        [reply] = await fake.wait_for(echoed, within=20)
        text = reply["content"]
        assert "everyone" in text and "bob" in text  # the history was echoed
        assert "<@" not in text and reply["allowed_mentions"] == {"parse": []}
        assert all(text[i + 1] == "\u200b" for i, c in enumerate(text) if c == "@")
