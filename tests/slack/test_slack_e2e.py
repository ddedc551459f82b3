"""End to end over Socket Mode: real slack-bolt + relay + store + backend client, against
the fake Slack and the mock backend."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest
from fence_oracle import balanced
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import PLATFORM_RATE_LIMITED
from bridge.slack.adapter import RESET_TEXT, THINKING_STATUS
from bridge.slack.budget import SlackRates
from bridge.slack.surface import MAX_MESSAGE_CHARS

if TYPE_CHECKING:
    from conftest import StartBridge

SOURCE_URL = "https://docs.example.com/getting-started"


async def test_socket_mode_connects_and_reports_ready(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:
        assert bridge.adapter.ready
        opened = bridge.slack.calls_to("apps.connections.open")
        assert opened and opened[0].headers["Authorization"] == f"Bearer {bridge.slack.app_token}"
        await bridge.adapter.stop()
        assert not bridge.adapter.ready
        await bridge.adapter.stop()  # twice is fine


async def test_mention_gets_placeholder_progressive_edits_and_final_sources(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(slack_streaming="update") as bridge:
        event = bridge.mention("How do I deploy?")
        await bridge.deliver(event)
        thread_ts = event["event"]["ts"]
        [reply] = await bridge.answered("C1", thread_ts)

        assert reply.history[0] == "_Thinking…_"
        assert len(reply.history) >= 3, reply.history  # placeholder, growing text, final
        assert "How do I deploy?" in reply.text
        assert f"]({SOURCE_URL})" in reply.text and "**Sources**" in reply.text
        assert "▌" not in reply.text
        assert reply.unfurl_links is False
        question = bridge.mock.requests[0].json["question"]
        assert question == "How do I deploy?"  # mention stripped


async def test_native_streaming_answer(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:
        event = bridge.mention("Stream it")
        await bridge.deliver(event)
        [reply] = await bridge.answered("C1", event["event"]["ts"])

        assert "Stream it" in reply.text and SOURCE_URL in reply.text
        assert "Thinking" not in reply.text
        start = bridge.slack.calls_to("chat.startStream")[0].params
        assert (start["recipient_team_id"], start["recipient_user_id"]) == ("T0FAKE", "U1")
        assert len(bridge.slack.calls_to("chat.appendStream")) >= 1
        assert len(bridge.slack.calls_to("chat.stopStream")) == 1
        assert not bridge.slack.calls_to("chat.update")
        assert not bridge.slack.refused  # every call carried what Slack requires


async def test_without_streaming_api_answers_fall_back_to_updates(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        bridge.slack.streaming_supported = False
        first, second = bridge.mention("one"), bridge.mention("two")
        for event in (first, second):
            await bridge.deliver(event)
            [reply] = await bridge.answered("C1", event["event"]["ts"])
            assert SOURCE_URL in reply.text
        assert len(bridge.slack.calls_to("chat.startStream")) == 1  # remembered per workspace
        assert bridge.slack.calls_to("chat.update")


@pytest.mark.parametrize(
    ("backend", "continuation"),
    [("wonderchat", "chatlogId"), ("widget", "previous_response_id")],
)
async def test_thread_follow_up_without_mention_continues_the_conversation(
    running_bridge: StartBridge, backend: str, continuation: str
) -> None:
    async with running_bridge(backend=backend) as bridge:
        event = bridge.mention("first question")
        thread_ts = event["event"]["ts"]
        await bridge.deliver(event)
        await bridge.answered("C1", thread_ts)

        await bridge.deliver(bridge.message("and a follow-up", thread_ts=thread_ts))
        replies = await bridge.answered("C1", thread_ts, count=2)

        first, second = (request.json for request in bridge.mock.requests)
        assert continuation not in first or first[continuation] is None
        assert second[continuation]
        assert "turn 2" in replies[1].text


async def test_messages_in_threads_the_bot_never_answered_are_ignored(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        await bridge.deliver(bridge.message("chatting among humans", thread_ts="1599999999.0001"))
        await bridge.deliver(bridge.message("top-level chatter"))
        # A mention afterwards is answered; by then the earlier events were handled.
        event = bridge.mention("now me")
        await bridge.deliver(event)
        await bridge.answered("C1", event["event"]["ts"])
        assert len(bridge.mock.requests) == 1


async def test_dm_flow_shares_a_conversation_until_reset(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:

        async def dm(text: str, count: int) -> str:
            await bridge.deliver(bridge.message(text, channel="D1", channel_type="im"))
            return (await bridge.answered("D1", None, count=count))[-1].text

        assert "turn 1" in await dm("hello", 1)
        assert "turn 2" in await dm("again", 2)
        assert RESET_TEXT in await dm("  Reset ", 3)
        assert "turn 1" in await dm("fresh start", 4)
        assert len(bridge.mock.requests) == 3
        assert not bridge.slack.calls_to("chat.startStream")  # top-level DMs cannot stream


async def test_assistant_thread_gets_prompts_and_thinking_status(
    running_bridge: StartBridge,
) -> None:
    prompts = "What can you do?|How do I reset my password?"
    async with running_bridge(slack_suggested_prompts=prompts) as bridge:
        started = bridge.slack.event_body(
            {
                "type": "assistant_thread_started",
                "assistant_thread": {"user_id": "U1", "channel_id": "D1", "thread_ts": "50.5"},
            }
        )
        await bridge.deliver(started)
        await bridge.slack.wait_until(
            lambda: bool(bridge.slack.calls_to("assistant.threads.setSuggestedPrompts"))
        )
        call = bridge.slack.calls_to("assistant.threads.setSuggestedPrompts")[0].params
        assert call["prompts"][1] == {
            "title": "How do I reset my password?",
            "message": "How do I reset my password?",
        }
        assert (call["channel_id"], call["thread_ts"]) == ("D1", "50.5")

        await bridge.deliver(
            bridge.message("What can you do?", channel="D1", channel_type="im", thread_ts="50.5")
        )
        [reply] = await bridge.answered("D1", "50.5")
        assert "What can you do?" in reply.text
        status = bridge.slack.calls_to("assistant.threads.setStatus")[0]
        assert status.params["status"] == THINKING_STATUS
        assert status.at <= bridge.slack.calls_to("chat.startStream")[0].at
        assert not bridge.slack.refused


async def test_a_rate_limited_thinking_status_does_not_drop_the_question(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        bridge.slack.rate_limit("assistant.threads.setStatus", nth=1, retry_after=30)
        await bridge.deliver(
            bridge.message("still answered?", channel="D1", channel_type="im", thread_ts="60.5")
        )
        [reply] = await bridge.answered("D1", "60.5")
        assert "still answered?" in reply.text


async def test_a_retried_event_is_answered_once(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:
        event = bridge.mention("only once please")
        await bridge.deliver(event)
        await bridge.deliver(event, retry_attempt=1)
        await bridge.deliver(event, retry_attempt=2)
        # bolt acknowledges after the handler submitted its answer, so a wrongly
        # accepted duplicate is running by now, and `answered` waits until none is.
        await bridge.answered("C1", event["event"]["ts"])
        assert len(bridge.slack.replies("C1", event["event"]["ts"])) == 1
        assert len(bridge.mock.requests) == 1


async def test_the_bots_own_and_other_bots_messages_are_ignored(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        slack = bridge.slack
        own = bridge.message(
            "I am the bot",
            channel="D1",
            channel_type="im",
            user=slack.bot_user_id,
            bot_id=slack.bot_id,
        )
        other = bridge.message("beep", channel="D1", channel_type="im", bot_id="B0THER")
        edited = bridge.message(
            "edited", channel="D1", channel_type="im", subtype="message_changed"
        )
        for body in (own, other, edited):
            await bridge.deliver(body)
        await bridge.deliver(bridge.message("a human", channel="D1", channel_type="im"))
        await bridge.answered("D1", None)
        assert [r.json["question"] for r in bridge.mock.requests] == ["a human"]


async def test_a_429_on_chat_update_is_honoured_and_the_final_text_survives(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(slack_streaming="update") as bridge:
        before = PLATFORM_RATE_LIMITED.labels(platform="slack")._value.get()
        bridge.slack.rate_limit("chat.update", nth=2, retry_after=1)
        event = bridge.mention("rate limit me")
        await bridge.deliver(event)
        [reply] = await bridge.answered("C1", event["event"]["ts"])
        assert "rate limit me" in reply.text and SOURCE_URL in reply.text
        assert PLATFORM_RATE_LIMITED.labels(platform="slack")._value.get() > before
        updates = [c.at for c in bridge.slack.calls_to("chat.update")]
        assert updates[2] - updates[1] >= 1.0  # nothing was sent during Retry-After


@pytest.mark.parametrize("marker", ["[mock:error]", "[mock:500]"])
async def test_backend_failure_is_a_clear_message(running_bridge: StartBridge, marker: str) -> None:
    async with running_bridge(bridge_backend_retries=0) as bridge:
        event = bridge.mention(f"break {marker}")
        await bridge.deliver(event)
        [reply] = await bridge.answered("C1", event["event"]["ts"])
        assert "⚠️ The answer could not be completed" in reply.text
        assert "Traceback" not in reply.text


async def test_backend_text_cannot_ping(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:
        event = bridge.mention("[mock:hostile-sources]")
        await bridge.deliver(event)
        [reply] = await bridge.answered("C1", event["event"]["ts"])
        for ping in (
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U0123ABCD>",
            "<!subteam^",
            "@everyone",
            "@here",
        ):
            assert ping not in reply.text
        assert "javascript:" not in reply.text and "data:text" not in reply.text


def departures(method: str) -> tuple[aiohttp.TraceConfig, list[float]]:
    """A trace that notes when each call of `method` leaves the client (aiohttp's own
    hook, before any network or server delay), and the list it fills."""
    stamps: list[float] = []

    async def on_request_start(
        _session: aiohttp.ClientSession, _context: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path.endswith("/" + method):
            stamps.append(time.monotonic())

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace, stamps


async def test_twenty_simultaneous_answers_share_the_workspace_budget(
    running_bridge: StartBridge,
) -> None:
    """Counted when calls leave the bridge: counted on arrival, a stall of the shared
    event loop would bunch calls that left on time (the race this test once had)."""
    rates = SlackRates(update_per_minute=600, update_burst=4)  # 10/s, bursts of 4
    trace, stamps = departures("chat.update")
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        running_bridge(
            slack_streaming="update", rates=rates, session=session, bridge_max_concurrency=32
        ) as bridge,
    ):
        events = [bridge.mention(f"question {n}", channel=f"C{n}") for n in range(20)]
        await asyncio.gather(*(bridge.deliver(event) for event in events))
        for n, event in enumerate(events):
            [reply] = await bridge.answered(f"C{n}", event["event"]["ts"])
            assert f"question {n}" in reply.text and SOURCE_URL in reply.text

    assert len(stamps) == len(bridge.slack.calls_to("chat.update")) >= 20
    window = 1.0
    busiest = max(sum(1 for t in stamps if start <= t < start + window) for start in stamps)
    # burst + rate × window, plus one for a token that refilled at the window's edge
    assert busiest <= 4 + 10 + 1, busiest


async def test_edit_message_replaces_old_replies_even_mid_stream(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        client = AsyncWebClient(token=bridge.slack.bot_token, base_url=bridge.slack.api_url)
        posted = await client.chat_postMessage(channel="C1", text="old answer")
        streaming = await client.chat_startStream(
            channel="C1", thread_ts="1.0", recipient_team_id="T0FAKE", recipient_user_id="U1"
        )
        for ts in (posted["ts"], streaming["ts"]):
            await bridge.adapter.edit_message("C1", ts, "interrupted <!channel>")
            message = bridge.slack.messages[ts]
            assert message.text == "interrupted &lt;!channel&gt;"
            assert not message.streaming


async def test_a_bare_mention_gets_the_hint_even_on_a_native_stream(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        event = bridge.mention("")
        await bridge.deliver(event)
        [reply] = await bridge.answered("C1", event["event"]["ts"])
        assert reply.text.startswith("Hi! Ask me a question")
        assert not bridge.mock.requests


async def test_a_retried_reset_is_confirmed_once(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:
        reset = bridge.message("reset", channel="D1", channel_type="im")
        await bridge.deliver(reset)
        await bridge.deliver(reset, retry_attempt=1)
        await bridge.deliver(bridge.message("a question", channel="D1", channel_type="im"))
        replies = [m.text for m in await bridge.answered("D1", None, count=2)]
        assert replies.count(RESET_TEXT) == 1
        assert len(replies) == 2


async def test_a_retried_assistant_message_sets_the_status_once(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        event = bridge.message("hello", channel="D1", channel_type="im", thread_ts="60.6")
        await bridge.deliver(event)
        await bridge.deliver(event, retry_attempt=1)
        await bridge.answered("D1", "60.6")
        assert len(bridge.slack.calls_to("assistant.threads.setStatus")) == 1
        assert len(bridge.mock.requests) == 1


async def test_slack_variables_in_the_environment_do_not_confuse_bolt(
    running_bridge: StartBridge,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Heroku exports config vars: bolt must neither warn about SLACK_BOT_TOKEN nor turn
    into an OAuth app because SLACK_CLIENT_ID/SECRET are set."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-fake-bot-token")
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "client-secret")
    with caplog.at_level(logging.WARNING, logger="slack_bolt"):
        async with running_bridge() as bridge:
            event = bridge.mention("still answered")
            await bridge.deliver(event)
            [reply] = await bridge.answered("C1", event["event"]["ts"])
            assert "still answered" in reply.text
    assert not [r for r in caplog.records if r.name.startswith("slack_bolt")]
    assert os.environ["SLACK_CLIENT_ID"] == "111.222"  # restored after construction


async def test_a_user_not_in_the_allow_list_is_refused_visibly(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(bridge_allowed_users="U1") as bridge:
        refused = bridge.mention("may I?", user="U2")
        await bridge.deliver(refused)
        [reply] = await bridge.answered("C1", refused["event"]["ts"])
        allowed = bridge.mention("and me?", user="U1")
        await bridge.deliver(allowed)
        [answer] = await bridge.answered("C1", allowed["event"]["ts"])

    assert "not enabled here" in reply.text
    assert "and me?" in answer.text
    assert [r.json["question"] for r in bridge.mock.requests] == ["and me?"]


@pytest.mark.parametrize("streaming", ["update", "native"])
async def test_a_long_answer_is_split_into_messages_with_balanced_fences(
    running_bridge: StartBridge, streaming: str
) -> None:
    async with running_bridge(slack_streaming=streaming) as bridge:
        event = bridge.mention("[mock:long] everything please")
        await bridge.deliver(event)
        await bridge.slack.wait_until(lambda: bool(bridge.mock.requests))
        await bridge.relay.drain(30.0)  # the whole answer, however many parts
        parts = bridge.slack.replies("C1", event["event"]["ts"])

    assert len(parts) >= 2  # > 20,000 characters, at most 12,000 per Slack message
    for part in parts:
        assert len(part.text) <= MAX_MESSAGE_CHARS and not part.streaming
        assert balanced(part.text), part.text[-200:]
        assert "▌" not in part.text
    joined = "\n".join(part.text for part in parts)
    for n in (1, 18, 36):
        assert f"## Part {n} (turn 1)" in joined
    assert SOURCE_URL in parts[-1].text
    assert not bridge.slack.truncated and not bridge.slack.refused


async def test_a_follow_up_the_backend_can_no_longer_continue_starts_over_visibly(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(backend="widget") as bridge:
        event = bridge.mention("first question")
        thread_ts = event["event"]["ts"]
        await bridge.deliver(event)
        await bridge.answered("C1", thread_ts)
        bridge.mock.forget_conversations()  # expired at the backend meanwhile

        await bridge.deliver(bridge.message("and a follow-up", thread_ts=thread_ts))
        _first, second = await bridge.answered("C1", thread_ts, count=2)
        await bridge.deliver(bridge.message("one more", thread_ts=thread_ts))
        third = (await bridge.answered("C1", thread_ts, count=3))[-1]

    assert second.text.startswith("_The chatbot no longer had our earlier conversation")
    assert "turn 1 of this conversation" in second.text
    assert "turn 2 of this conversation" in third.text  # the new conversation goes on
    assert "no longer had" not in third.text
