"""End to end: the real discord.py client (through DiscordAdapter) against the fake
Discord REST + gateway, with the real relay, SQLite store and backend client talking to
the mock backend over HTTP/SSE."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bridge.config import load_settings
from bridge.discord import DiscordAdapter
from bridge.errors import ConfigError, PlatformError
from bridge.runtime import Runtime, open_runtime
from bridge.store import TurnStatus
from bridge.testing.discord_rules import (
    ALL_PERMISSIONS,
    CREATE_PUBLIC_THREADS,
    SEND_MESSAGES_IN_THREADS,
)
from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(60)

STREAMING_MARKER = "▌"
FINAL_ANSWER_END = "Is there anything else I can help you with?"
CONDITION_WAIT = 20.0  # generous bound for a condition on a shared 2-core machine


@asynccontextmanager
async def running_bridge(
    fake: FakeDiscord,
    mock: MockBackend,
    tmp_path: Path,
    *,
    feedback: bool = False,
    **overrides: Any,
) -> AsyncIterator[tuple[DiscordAdapter, Runtime]]:
    """`feedback`: answers get the 👍/👎 buttons and presses are handled (as in `bridge run`)."""
    settings = load_settings(
        discord_token="fake-token",
        discord_api_url=fake.api_url,
        wonderchat_chatbot_id=mock.chatbot_id,
        wonderchat_api_url=mock.url,
        database_url=f"sqlite:///{tmp_path / 'bridge.db'}",
        # 1 s between edits, as Discord advises, at the fake's TEST_SPEED
        **({"bridge_edit_interval": 1.0 / TEST_SPEED} | overrides),
    )
    async with open_runtime(settings) as runtime:
        quality = {"feedback": runtime.feedback, "handoffs": runtime.handoffs} if feedback else {}
        adapter = DiscordAdapter(settings, runtime.relay, guild_ready_timeout=0.05, **quality)
        await adapter.start()
        try:
            yield adapter, runtime
            if fake.permissions == ALL_PERMISSIONS:  # with every permission, no rule of
                assert not fake.refusals, fake.refusals  # Discord's refuses the bridge
            # The bridge paces itself (global budget, discord.py's route buckets): the
            # enforcing fake never had to send a 429 the test did not inject.
            if fake.limits is not None:
                assert (fake.limits.global_hits, fake.limits.route_hits) == (0, 0)
        finally:
            await runtime.relay.drain(5.0)
            await adapter.stop()


# The fake enforces Discord's rate limits on a clock this much faster (route buckets of
# 5 edits per 5 s would otherwise pace the quick test answers to a crawl).
TEST_SPEED = 10.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(speed=TEST_SPEED) as server:
        yield server


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(delay=0.005) as server:
        yield server


def finished(message: dict[str, Any]) -> bool:
    content = message["content"]
    return FINAL_ANSWER_END in content and STREAMING_MARKER not in content


def final_answer(fake: FakeDiscord, channel_id: str) -> dict[str, Any] | None:
    return next((m for m in fake.bot_messages_in(channel_id) if finished(m)), None)


def finished_count(fake: FakeDiscord, channel_id: str) -> int:
    return len([m for m in fake.bot_messages_in(channel_id) if finished(m)])


async def answered_dm(fake: FakeDiscord, mock: MockBackend, tmp_path: Path, text: str) -> str:
    """Alice DMs `text`; returns the DM channel once the answer is complete (drained)."""
    async with running_bridge(fake, mock, tmp_path) as (_adapter, runtime):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, text)
        await fake.wait_for(lambda: fake.bot_messages_in(dm))
        await runtime.relay.drain(CONDITION_WAIT)
    return dm


async def ask_and_wait(fake: FakeDiscord, channel_id: str, text: str, *, answers: int) -> None:
    """Post `text` and wait until `answers` finished answers are in the channel."""
    await fake.user_message(channel_id, text)
    await fake.wait_for(lambda: finished_count(fake, channel_id) == answers)


def backend_questions(mock: MockBackend) -> list[dict[str, Any]]:
    return [r.json for r in mock.requests if r.path == "/api/v1/chat"]


def assert_never_pings(fake: FakeDiscord) -> None:
    """Every message the bot created or edited, and every command response with text,
    disabled all mentions."""
    bodies = [
        r.json
        for r in fake.requests
        if r.method in ("POST", "PATCH")
        and ("/messages" in r.path or r.path.startswith("/webhooks/"))
        and not r.path.endswith("/threads")
    ]
    bodies += [
        r.json["data"]
        for r in fake.requests_to("POST", r"/callback$")
        if "content" in (r.json.get("data") or {})
    ]
    assert bodies
    for body in bodies:
        allowed = body["allowed_mentions"]
        assert allowed["parse"] == [], body
        assert not allowed.get("users") and not allowed.get("roles"), body
        assert not allowed.get("replied_user"), body


async def test_dm_placeholder_edits_final_with_sources(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path) as (adapter, _runtime):
        assert adapter.ready
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "How do threads work?")
        answer = await fake.wait_for(lambda: final_answer(fake, dm))

    assert "How do threads work?" in answer["content"]
    assert "**Sources**" in answer["content"]
    assert "(<https://docs.example.com/getting-started>)" in answer["content"]
    edits = fake.requests_to("PATCH", rf"/channels/{dm}/messages/{answer['id']}$")
    assert len(edits) >= 2  # streamed: several edits, not one final write
    assert any(STREAMING_MARKER in (e.json["content"] or "") for e in edits)
    assert fake.requests_to("POST", rf"/channels/{dm}/typing$")
    assert fake.requests_to("GET", r"^/gateway/bot$")  # gateway found through the API
    assert fake.identifies[-1]["intents"] & (1 << 15) == 0  # no message-content intent
    assert {c["name"] for c in fake.commands["global"]} == {"ask", "reset", "Ask bot"}
    assert_never_pings(fake)


async def test_mention_opens_thread_and_follow_up_continues_the_conversation(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_message_content=True):
        question = await fake.user_message(
            fake.channel_id, "What is  streaming?\nTell me.", mention_bot=True
        )
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        assert thread["name"] == "What is streaming? Tell me."
        await fake.wait_for(lambda: final_answer(fake, thread["id"]))
        # With the message-content intent, a plain follow-up in the bot's thread is enough.
        await fake.user_message(thread["id"], "And a follow-up?")
        await fake.wait_for(lambda: finished_count(fake, thread["id"]) == 2)

    assert fake.identifies[-1]["intents"] & (1 << 15)
    first, second = backend_questions(mock)
    assert "chatlogId" not in first
    assert second["chatlogId"]  # the conversation id the backend gave the first answer
    assert second["question"] == "And a follow-up?"
    assert not fake.bot_messages_in(fake.channel_id)  # nothing answered in the channel
    assert_never_pings(fake)


async def test_without_content_intent_thread_follow_ups_need_a_mention(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        question = await fake.user_message(fake.channel_id, "first question", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        await fake.wait_for(lambda: final_answer(fake, thread["id"]))
        await fake.user_message(thread["id"], "unmentioned follow-up")  # arrives empty
        await fake.user_message(thread["id"], "mentioned follow-up", mention_bot=True)
        await fake.wait_for(lambda: finished_count(fake, thread["id"]) == 2)

    questions = backend_questions(mock)
    assert [q["question"] for q in questions] == ["first question", "mentioned follow-up"]
    assert questions[1]["chatlogId"]


async def test_no_thread_permission_falls_back_to_replies_that_continue(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    fake.revoke(CREATE_PUBLIC_THREADS)
    async with running_bridge(fake, mock, tmp_path):
        question = await fake.user_message(fake.channel_id, "no threads here", mention_bot=True)
        answer = await fake.wait_for(lambda: final_answer(fake, fake.channel_id))
        assert answer["message_reference"]["message_id"] == question["id"]
        await fake.user_message(fake.channel_id, "replying to the answer", reply_to=answer["id"])
        await fake.wait_for(lambda: finished_count(fake, fake.channel_id) == 2)

    assert not fake.threads
    _first, second = backend_questions(mock)
    assert second["question"] == "replying to the answer"
    assert second["chatlogId"]
    assert_never_pings(fake)


async def test_a_thread_the_bot_may_not_post_in_ends_the_turn_as_a_clear_error(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    fake.revoke(SEND_MESSAGES_IN_THREADS)  # an admin's choice: threads yes, posting no
    async with running_bridge(fake, mock, tmp_path) as (_adapter, runtime):
        question = await fake.user_message(fake.channel_id, "anyone?", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        await fake.wait_for(lambda: fake.refusals)
        await runtime.relay.drain(CONDITION_WAIT)
        turn = await runtime.store.get_turn("discord", question["id"])

    assert [(r.status, r.code) for r in fake.refusals] == [(403, 50013)]
    assert not fake.bot_messages_in(thread["id"])
    assert turn is not None and turn.status == TurnStatus.ERROR
    assert turn.error is not None and "lacks a permission" in turn.error


async def test_without_content_intent_an_unpinging_reply_is_not_answered(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    fake.revoke(CREATE_PUBLIC_THREADS)
    async with running_bridge(fake, mock, tmp_path):
        await fake.user_message(fake.channel_id, "no threads here", mention_bot=True)
        answer = await fake.wait_for(lambda: final_answer(fake, fake.channel_id))
        # Reply with the ping switched off: Discord withholds the text, so not for us.
        await fake.user_message(
            fake.channel_id, "unseen", reply_to=answer["id"], ping_replied=False
        )
        await fake.user_message(fake.channel_id, "pinging reply", reply_to=answer["id"])
        await fake.wait_for(lambda: finished_count(fake, fake.channel_id) == 2)

    assert [q["question"] for q in backend_questions(mock)] == ["no threads here", "pinging reply"]
    assert len(fake.bot_messages_in(fake.channel_id)) == 2  # no "ask me a question" hint


async def test_slash_ask_defers_then_edits_the_original_response(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_guild_id=int(fake.guild_id)):
        interaction = await fake.run_command(
            "ask", {"question": "slash question"}, channel_id=fake.channel_id
        )
        token = interaction["token"]
        await fake.wait_for(
            lambda: (
                fake.interaction_messages(token) and finished(fake.interaction_messages(token)[0])
            )
        )

    assert {c["name"] for c in fake.commands[fake.guild_id]} == {"ask", "reset", "Ask bot"}
    assert fake.interaction_callbacks(token)[0]["type"] == 5  # deferred: "thinking…"
    edits = fake.requests_to("PATCH", rf"/webhooks/\d+/{token}/messages/@original$")
    assert len(edits) >= 2
    assert "slash question" in fake.interaction_messages(token)[0]["content"]
    assert backend_questions(mock)[0]["question"] == "slash question"
    assert_never_pings(fake)


async def test_long_answer_is_split_into_messages_with_balanced_fences(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    dm = await answered_dm(fake, mock, tmp_path, "[mock:long] everything please")

    messages = fake.bot_messages_in(dm)
    assert len(messages) >= 11  # > 20,000 characters in ≤ 2,000 character messages
    for message in messages:
        assert len(message["content"]) <= 2000
        assert message["content"].count("```") % 2 == 0, message["content"]
        assert STREAMING_MARKER not in message["content"]
    joined = "\n".join(m["content"] for m in messages)
    assert "## Part 1 " in joined
    assert "## Part 30 " in joined
    assert_never_pings(fake)


async def test_rate_limited_edit_is_retried_and_the_text_survives(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    def limited() -> float:
        value = REGISTRY.get_sample_value(
            "bridge_platform_rate_limited_total", {"platform": "discord"}
        )
        return value or 0.0

    def edits_counted() -> float:
        labels = {"platform": "discord", "method": "PATCH /channels/:id/messages/:id"}
        return REGISTRY.get_sample_value("bridge_platform_api_calls_total", labels) or 0.0

    before, edits_before = limited(), edits_counted()
    fake.rate_limit_patch(nth=2, retry_after=0.3)
    async with running_bridge(fake, mock, tmp_path):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "rate limit me")
        answer = await fake.wait_for(lambda: final_answer(fake, dm))

    assert "rate limit me" in answer["content"]
    assert "**Sources**" in answer["content"]
    assert limited() == before + 1
    patches = fake.requests_to("PATCH", r"^/channels/\d+/messages/\d+$")
    assert edits_counted() - edits_before == len(patches)  # the retried 429 included
    limited_at, retried_at = patches[1].at, patches[2].at  # the 2nd PATCH got the 429
    assert retried_at - limited_at >= 0.3  # nothing was sent before retry_after passed


async def test_bot_messages_are_ignored(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    other_bot = fake.make_user("other-bot", bot=True)
    async with running_bridge(fake, mock, tmp_path):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "from myself", author=fake.bot)
        await fake.user_message(dm, "from another bot", author=other_bot)
        await fake.user_message(fake.channel_id, "bot mention", author=other_bot, mention_bot=True)
        await fake.user_message(dm, "from a person")
        await fake.wait_for(lambda: final_answer(fake, dm))

    assert [q["question"] for q in backend_questions(mock)] == ["from a person"]
    assert not fake.threads


async def test_dm_reset_starts_a_new_conversation(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        dm = fake.dm_channel(fake.alice)
        await ask_and_wait(fake, dm, "one", answers=1)
        await ask_and_wait(fake, dm, "two", answers=2)
        await fake.user_message(dm, "reset")
        await fake.wait_for(
            lambda: any("new conversation" in m["content"] for m in fake.bot_messages_in(dm))
        )
        await ask_and_wait(fake, dm, "three", answers=3)

    one, two, three = backend_questions(mock)
    assert "chatlogId" not in one
    assert two["chatlogId"]
    assert "chatlogId" not in three  # reset: a fresh conversation
    assert_never_pings(fake)


async def test_dms_disabled_get_a_polite_refusal(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_allow_dms=False):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "hello?")
        refusal = await fake.wait_for(lambda: fake.bot_messages_in(dm))

    assert "don't answer direct messages" in refusal[0]["content"]
    assert not backend_questions(mock)


async def test_edit_message_for_recovery_and_platform_errors(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path) as (adapter, runtime):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "answer me")
        answer = await fake.wait_for(lambda: final_answer(fake, dm))
        await adapter.edit_message(dm, answer["id"], "⚠️ interrupted @everyone")
        assert fake.messages[answer["id"]]["content"].startswith("⚠️ interrupted")
        with pytest.raises(PlatformError, match="no longer exists"):
            await adapter.edit_message(dm, "12345", "gone")
        assert [r.code for r in fake.refusals] == [10008]  # asked for: not a breach
        fake.refusals.clear()

        # A deleted channel fails one answer; the next conversation is unaffected.
        bob_dm = fake.dm_channel(fake.bob)
        fake.fail_next("POST", rf"/channels/{bob_dm}/messages$", status=404, code=10003)
        await fake.user_message(bob_dm, "my channel vanishes", author=fake.bob)
        await ask_and_wait(fake, dm, "still here?", answers=1)  # the first one was edited
        await runtime.relay.drain(CONDITION_WAIT)
    assert "still here?" in [q["question"] for q in backend_questions(mock)]
    assert not fake.bot_messages_in(bob_dm)
    assert_never_pings(fake)


async def test_hostile_answer_and_sources_cannot_ping(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    dm = await answered_dm(fake, mock, tmp_path, "[mock:hostile-sources] be nasty")

    (answer,) = fake.bot_messages_in(dm)
    content = answer["content"]
    assert "none of these" in content
    for ping in ("@everyone", "@here", "<@123456789012345678>", "<@&123456789012345678>"):
        assert ping not in content
    assert "javascript:" not in content
    assert "(<https://docs.example.com/b>)" in content
    assert_never_pings(fake)


async def test_bare_mention_gets_a_hint_reply_without_a_thread(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        question = await fake.user_message(fake.channel_id, "", mention_bot=True)
        (hint,) = await fake.wait_for(lambda: fake.bot_messages_in(fake.channel_id))

    assert "Ask me a question" in hint["content"]
    assert hint["message_reference"]["message_id"] == question["id"]
    assert not fake.threads
    assert not backend_questions(mock)


async def test_mention_in_a_channel_not_allowed_is_refused_without_a_thread(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, bridge_allowed_channels="some-other-channel"):
        await fake.user_message(fake.channel_id, "what is new?", mention_bot=True)
        (refusal,) = await fake.wait_for(lambda: fake.bot_messages_in(fake.channel_id))

    assert "not enabled here" in refusal["content"]
    assert not fake.threads
    assert not backend_questions(mock)


async def test_a_mention_in_a_server_not_allowed_is_refused_without_a_thread(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, bridge_allowed_guilds="123456789"):
        await fake.user_message(fake.channel_id, "may I?", mention_bot=True)
        (refusal,) = await fake.wait_for(lambda: fake.bot_messages_in(fake.channel_id))
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "and here?")  # DMs belong to no server: answered
        await fake.wait_for(lambda: final_answer(fake, dm))

    assert "not enabled here" in refusal["content"]
    assert not fake.threads
    assert [q["question"] for q in backend_questions(mock)] == ["and here?"]


async def test_a_user_not_allowed_is_refused_in_dms_and_servers(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    allowed = fake.bob["id"]
    async with running_bridge(fake, mock, tmp_path, bridge_allowed_users=allowed):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "alice asks")
        (dm_refusal,) = await fake.wait_for(lambda: fake.bot_messages_in(dm))
        await fake.user_message(fake.channel_id, "alice again", mention_bot=True)
        (refusal,) = await fake.wait_for(lambda: fake.bot_messages_in(fake.channel_id))
        bob_dm = fake.dm_channel(fake.bob)
        await fake.user_message(bob_dm, "bob asks", author=fake.bob)
        await fake.wait_for(lambda: final_answer(fake, bob_dm))

    assert "not enabled here" in dm_refusal["content"]
    assert "not enabled here" in refusal["content"]
    assert not fake.threads
    assert [q["question"] for q in backend_questions(mock)] == ["bob asks"]


async def test_reset_command_in_a_thread(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        question = await fake.user_message(fake.channel_id, "first", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        await fake.wait_for(lambda: final_answer(fake, thread["id"]))
        interaction = await fake.run_command("reset", channel_id=thread["id"])
        (callback,) = await fake.wait_for(lambda: fake.interaction_callbacks(interaction["token"]))
        await fake.user_message(thread["id"], "after reset", mention_bot=True)
        await fake.wait_for(lambda: finished_count(fake, thread["id"]) == 2)

    assert callback["type"] == 4
    assert callback["data"]["flags"] & 64  # ephemeral: only the person sees it
    assert "new conversation" in callback["data"]["content"]
    _first, second = backend_questions(mock)
    assert "chatlogId" not in second
    assert_never_pings(fake)


@pytest.mark.parametrize("content_intent", [True, False])
async def test_follow_up_in_an_archived_thread_after_a_restart_continues(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path, content_intent: bool
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_message_content=content_intent):
        question = await fake.user_message(fake.channel_id, "before the restart", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        await fake.wait_for(lambda: final_answer(fake, thread["id"]))
    fake.archive_thread(thread["id"])  # the new client's GUILD_CREATE leaves it out

    async with running_bridge(fake, mock, tmp_path, discord_message_content=content_intent):
        await fake.user_message(thread["id"], "after the restart", mention_bot=not content_intent)
        await fake.wait_for(lambda: finished_count(fake, thread["id"]) == 2)

    _first, second = backend_questions(mock)
    assert second["question"] == "after the restart"
    assert second["chatlogId"]  # the thread's stored conversation, not a new one
    assert fake.requests_to("GET", rf"^/channels/{thread['id']}$")  # asked what it is
    assert not fake.requests_to("POST", rf"^/channels/{thread['id']}/messages/\d+/threads$")
    assert not fake.bot_messages_in(fake.channel_id)


async def test_reply_to_a_slash_answer_after_a_restart_continues_its_conversation(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path):
        interaction = await fake.run_command(
            "ask", {"question": "slash first"}, channel_id=fake.channel_id
        )
        await fake.wait_for(lambda: final_answer(fake, fake.channel_id))
    (answer,) = fake.interaction_messages(interaction["token"])

    async with running_bridge(fake, mock, tmp_path):  # remembers no answer ids
        await fake.user_message(fake.channel_id, "replying after restart", reply_to=answer["id"])
        await fake.wait_for(lambda: finished_count(fake, fake.channel_id) == 2)

    _first, second = backend_questions(mock)
    assert second["question"] == "replying after restart"
    assert second["chatlogId"]


async def test_reply_to_a_later_part_of_a_long_plain_answer_after_a_restart_continues(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    fake.revoke(CREATE_PUBLIC_THREADS)
    async with running_bridge(fake, mock, tmp_path) as (_adapter, runtime):
        await fake.user_message(fake.channel_id, "[mock:long] everything", mention_bot=True)
        await fake.wait_for(lambda: fake.bot_messages_in(fake.channel_id))
        await runtime.relay.drain(CONDITION_WAIT)
    parts = fake.bot_messages_in(fake.channel_id)
    assert len(parts) >= 2
    second_part = parts[1]
    assert "message_reference" not in second_part  # only the first part replies to the question
    with closing(sqlite3.connect(tmp_path / "bridge.db")) as db:
        [(chatlog_id,)] = db.execute("SELECT conversation_id FROM conversations").fetchall()

    async with running_bridge(fake, mock, tmp_path):  # remembers no answer ids
        reply = await fake.user_message(
            fake.channel_id, "about part two", reply_to=second_part["id"]
        )
        await fake.wait_for(
            lambda: any(
                finished(m) and m["message_reference"]["message_id"] == reply["id"]
                for m in fake.bot_messages_in(fake.channel_id)
                if "message_reference" in m
            )
        )

    _first, second = backend_questions(mock)
    assert second["question"] == "about part two"
    assert second["chatlogId"] == chatlog_id
    assert not fake.threads


async def test_long_slash_answer_continues_in_followups_without_pings_or_previews(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path) as (_adapter, runtime):
        interaction = await fake.run_command(
            "ask", {"question": "[mock:long] everything please"}, channel_id=fake.channel_id
        )
        token = interaction["token"]
        # Some text in the response: the relay is answering (so `drain` waits for it).
        await fake.wait_for(lambda: any(m["content"] for m in fake.interaction_messages(token)))
        await runtime.relay.drain(CONDITION_WAIT)

    messages = fake.interaction_messages(token)
    assert len(messages) >= 11
    for message in messages:
        assert len(message["content"]) <= 2000
        assert message["content"].count("```") % 2 == 0, message["content"]
        assert STREAMING_MARKER not in message["content"]
    assert "## Part 30 " in "\n".join(m["content"] for m in messages)
    assert "**Sources**" in messages[-1]["content"]
    followups = fake.requests_to("POST", rf"^/webhooks/\d+/{token}$")
    assert len(followups) == len(messages) - 1
    for request in followups:
        assert request.query.get("wait") in ("1", "true")  # the id is needed for edits
        assert request.json["flags"] & 4  # SUPPRESS_EMBEDS
    assert fake.requests_to("PATCH", rf"^/webhooks/\d+/{token}/messages/\d+$")  # followup edits
    assert_never_pings(fake)


async def test_message_in_a_server_not_cached_is_not_taken_for_a_dm(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    elsewhere = {**fake.channels[fake.channel_id], "id": fake.next_id(), "guild_id": "42"}
    fake.channels[elsewhere["id"]] = elsewhere  # in a guild the client never got
    async with running_bridge(fake, mock, tmp_path, bridge_allowed_guilds=fake.guild_id):
        await fake.user_message(elsewhere["id"], "sneaking past the allow-list", mention_bot=True)
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "a real DM")  # handled after the first message
        await fake.wait_for(lambda: final_answer(fake, dm))

    assert [q["question"] for q in backend_questions(mock)] == ["a real DM"]
    assert not fake.bot_messages_in(elsewhere["id"])


async def test_explicit_gateway_url_is_used_without_asking_the_api(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_gateway_url=fake.gateway_url) as (
        adapter,
        _runtime,
    ):
        assert adapter.ready
    assert fake.identifies
    assert not fake.requests_to("GET", r"^/gateway/bot$")


async def test_rejected_token_is_a_config_error(mock: MockBackend, tmp_path: Path) -> None:
    async with FakeDiscord(token="the-real-token") as fake:
        with pytest.raises(ConfigError, match="DISCORD_TOKEN was rejected"):
            async with running_bridge(fake, mock, tmp_path):
                pass
        assert not fake.identifies


async def test_content_intent_not_enabled_in_portal_is_a_config_error(
    mock: MockBackend, tmp_path: Path
) -> None:
    async with FakeDiscord(message_content_enabled=False) as fake:
        with pytest.raises(ConfigError, match="Message Content Intent is not enabled"):
            async with running_bridge(fake, mock, tmp_path, discord_message_content=True):
                pass
        assert fake.identifies  # it got as far as IDENTIFY
