"""The fake Slack refuses calls the real Web API refuses, with the same error codes, so a
wrong call from the adapter fails in tests. Driven by the real slack_sdk client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.testing.fake_slack import FakeSlack
from bridge.testing.slack_limits import SlackLimits

STREAM_IN_CHANNEL = {
    "channel": "C1",
    "thread_ts": "1.0",
    "recipient_team_id": "T0FAKE",
    "recipient_user_id": "U1",
}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def refusal(client: AsyncWebClient, method: str, params: dict[str, Any]) -> str:
    with pytest.raises(SlackApiError) as caught:
        await client.api_call(method, json=params)
    return str(caught.value.response["error"])


def without(params: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key != name}


@pytest.mark.parametrize(
    ("method", "params", "missing", "error"),
    [
        ("chat.postMessage", {"channel": "C1", "text": "x"}, "channel", "channel_not_found"),
        ("chat.postMessage", {"channel": "C1", "text": "x"}, "text", "no_text"),
        ("chat.startStream", STREAM_IN_CHANNEL, "channel", "channel_not_found"),
        ("chat.startStream", STREAM_IN_CHANNEL, "thread_ts", "invalid_arguments"),
        ("chat.startStream", STREAM_IN_CHANNEL, "recipient_team_id", "missing_recipient_team_id"),
        ("chat.startStream", STREAM_IN_CHANNEL, "recipient_user_id", "missing_recipient_user_id"),
        (
            "assistant.threads.setStatus",
            {"channel_id": "D1", "thread_ts": "1.0", "status": "is thinking…"},
            "thread_ts",
            "invalid_arguments",
        ),
        (
            "assistant.threads.setSuggestedPrompts",
            {"channel_id": "D1", "prompts": [{"title": "a", "message": "a"}]},
            "prompts",
            "invalid_arguments",
        ),
    ],
)
async def test_a_missing_required_parameter_is_refused_like_slack(
    client: AsyncWebClient, method: str, params: dict[str, Any], missing: str, error: str
) -> None:
    await client.api_call(method, json=params)  # complete: accepted
    assert await refusal(client, method, without(params, missing)) == error


async def test_stream_calls_need_their_message_and_text(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    started = await client.chat_startStream(**STREAM_IN_CHANNEL)
    ts = started["ts"]
    assert await refusal(client, "chat.appendStream", {"channel": "C1", "ts": ts}) == (
        "invalid_arguments"
    )
    assert await refusal(client, "chat.stopStream", {"channel": "C1"}) == "message_not_found"
    assert await refusal(client, "chat.update", {"channel": "C1", "ts": ts, "text": "x"}) == (
        "streaming_state_conflict"
    )
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="Hello")
    await client.chat_stopStream(channel="C1", ts=ts)
    assert slack.messages[ts].text == "Hello" and not slack.messages[ts].streaming


async def test_dm_streams_need_no_recipient_and_status_may_be_cleared(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    started = await client.chat_startStream(channel="D1", thread_ts="1.0")
    cleared = await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.0", status="")

    assert started["ok"] and cleared["ok"]
    message = slack.messages[started["ts"]]
    assert (message.channel, message.thread_ts, message.streaming) == ("D1", "1.0", True)
    [status] = slack.calls_to("assistant.threads.setStatus")
    assert status.params["status"] == ""
    assert not slack.refused


@pytest.mark.parametrize(
    "prompts",
    [
        [{"title": f"p{n}", "message": f"p{n}"} for n in range(5)],
        [{"title": "no message"}],
    ],
)
async def test_suggested_prompts_are_checked(
    client: AsyncWebClient, prompts: list[dict[str, str]]
) -> None:
    params = {"channel_id": "D1", "thread_ts": "1.0", "prompts": prompts}
    assert await refusal(client, "assistant.threads.setSuggestedPrompts", params) == (
        "invalid_arguments"
    )


async def test_refusals_carry_slacks_explanation(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.api_call("chat.startStream", json={"channel": "D1"})
    messages = caught.value.response["response_metadata"]["messages"]
    assert messages == ["[ERROR] missing required field: thread_ts"]


async def test_tiers_limit_each_method_per_minute_with_retry_after() -> None:
    async with FakeSlack(limits=SlackLimits({"chat.update": 2}, channel_posts=None)) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel="C1", text="placeholder")
        for n in range(2):
            await client.chat_update(channel="C1", ts=posted["ts"], text=f"edit {n}")
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel="C1", ts=posted["ts"], text="one too many")
        for _ in range(3):  # methods without a tier are never limited
            await client.chat_postMessage(channel="C1", text="more")

    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] in {str(n) for n in range(1, 61)}
    assert slack.messages[posted["ts"]].text == "edit 1"
    assert slack.refused == [("chat.update", "ratelimited")]


async def test_the_tier_window_slides_so_a_call_after_retry_after_succeeds() -> None:
    limits = SlackLimits({"chat.update": 1}, channel_posts=None, speed=60.0)  # 1 s minutes
    async with FakeSlack(limits=limits) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel="C1", text="first")
        await client.chat_update(channel="C1", ts=posted["ts"], text="edit")
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel="C1", ts=posted["ts"], text="too soon")
        await asyncio.sleep(float(caught.value.response.headers["Retry-After"]))
        await client.chat_update(channel="C1", ts=posted["ts"], text="after the window")

    assert slack.messages[posted["ts"]].history == ["first", "edit", "after the window"]


# Strictness: what Slack refuses by default -------------------------------------------


async def test_a_channel_the_workspace_does_not_have_is_refused(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    params = {"channel": "C404", "text": "hello"}
    assert await refusal(client, "chat.postMessage", params) == "channel_not_found"
    status = {"channel_id": "D404", "thread_ts": "1.0", "status": "is thinking…"}
    assert await refusal(client, "assistant.threads.setStatus", status) == "channel_not_found"
    replies = {"channel": "C404", "ts": "1.0"}
    assert await refusal(client, "conversations.replies", replies) == "channel_not_found"

    slack.event_body({"type": "app_mention", "channel": "C404", "user": "U1", "ts": "1.0"})
    posted = await client.chat_postMessage(**params)  # an event came from it: it exists
    assert slack.messages[posted["ts"]].channel == "C404"


async def test_a_token_inside_a_json_body_is_no_token(slack: FakeSlack) -> None:
    """slack_sdk always moves the token to the header; a hand-made call may not."""
    params = {"channel": "C1", "text": "x", "token": slack.bot_token}
    url = slack.api_url + "chat.postMessage"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=params) as in_json:
            assert (await in_json.json())["error"] == "not_authed"
        async with session.post(url, data=params) as in_form:  # form-encoded: read
            assert (await in_form.json())["ok"]
    assert [m.text for m in slack.messages.values()] == ["x"]


async def test_text_beyond_40000_characters_is_cut_and_oversized_blocks_refused(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="y" * 40_001)
    assert len(slack.messages[posted["ts"]].text) == 40_000
    assert slack.truncated == [posted["ts"]]

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "z" * 3_001}}
    params = {"channel": "C1", "text": "z", "blocks": [section]}
    assert await refusal(client, "chat.postMessage", params) == "invalid_blocks"
    markdown = {"type": "markdown", "text": "m" * 12_001}
    update = {"channel": "C1", "ts": posted["ts"], "text": "m", "blocks": [markdown]}
    assert await refusal(client, "chat.update", update) == "invalid_blocks"


async def test_retry_after_is_whole_seconds(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.rate_limit("chat.postMessage", nth=1, retry_after=0.3)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.headers["Retry-After"] == "1"


async def socket_mode_client(
    slack: FakeSlack, session: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    """A bare Socket Mode connection that acknowledges only what the test says."""
    socket = await session.ws_connect(f"ws://127.0.0.1:{slack.port}/link/")
    hello = await socket.receive_json()
    assert hello["type"] == "hello"
    return socket


async def test_an_unacknowledged_envelope_is_redelivered_until_slack_gives_up() -> None:
    async with (
        FakeSlack(ack_timeout=0.2, retry_delays=(0.0, 0.1)) as slack,
        aiohttp.ClientSession() as session,
    ):
        socket = await socket_mode_client(slack, session)
        body = slack.event_body({"type": "app_mention", "channel": "C1", "ts": "1.0"})
        first_id = await slack.send_event(body)
        envelopes = [await socket.receive_json(timeout=5) for _ in range(3)]
        await slack.wait_until(lambda: not slack.socket_mode._watchers)

    assert [e["envelope_id"] == first_id for e in envelopes] == [True, False, False]
    assert [(e["retry_attempt"], e["retry_reason"]) for e in envelopes] == [
        (0, ""),
        (1, "timeout"),
        (2, "timeout"),
    ]
    assert {e["payload"]["event_id"] for e in envelopes} == {body["event_id"]}
    assert len(slack.socket_mode.deliveries) == 3  # two retries, then no more
    for earlier, later in itertools.pairwise(slack.socket_mode.deliveries):
        assert later.at - earlier.at >= 0.2  # each waited out the acknowledgement deadline


async def test_an_acknowledged_envelope_is_not_redelivered_and_a_late_ack_is_noted() -> None:
    async with (
        FakeSlack(ack_timeout=0.2, retry_delays=(0.5,)) as slack,
        aiohttp.ClientSession() as session,
    ):
        socket = await socket_mode_client(slack, session)
        on_time = await slack.send_event(slack.event_body({"type": "app_mention"}))
        await socket.send_json({"envelope_id": on_time})
        await slack.wait_for_ack(on_time)
        late = await slack.send_event(slack.event_body({"type": "app_mention"}))
        await slack.wait_until(lambda: time.monotonic() - slack.socket_mode.deliveries[-1].at > 0.3)
        await socket.send_json({"envelope_id": late})
        await slack.wait_for_ack(late)
        await slack.wait_until(lambda: not slack.socket_mode._watchers)

    assert slack.socket_mode.late_acks == [late]
    assert len(slack.socket_mode.deliveries) == 2 and not slack.redeliveries


async def test_posts_are_limited_per_channel_with_a_short_burst() -> None:
    async with FakeSlack(channels=("C1", "C2")) as slack:  # production: 1/s per channel, burst 3
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for n in range(3):
            await client.chat_postMessage(channel="C1", text=f"burst {n}")
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C1", text="one too many")
        await client.chat_postMessage(channel="C2", text="another channel")

    assert caught.value.response.status_code == 429
    assert 0 < float(caught.value.response.headers["Retry-After"]) <= 1.0
    assert slack.refused == [("chat.postMessage", "ratelimited")]


async def test_slack_ends_streams_left_open_too_long() -> None:
    async with FakeSlack(speed=3000.0) as slack:  # a 5-minute stream lasts 0.1 s
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        started = await client.api_call(
            "chat.startStream", json={"channel": "D1", "thread_ts": "1.1"}
        )
        ts = started["ts"]
        await client.api_call(
            "chat.appendStream", json={"channel": "D1", "ts": ts, "markdown_text": "kept"}
        )
        await asyncio.sleep(0.15)
        with pytest.raises(SlackApiError) as caught:
            await client.api_call(
                "chat.appendStream", json={"channel": "D1", "ts": ts, "markdown_text": " lost"}
            )
        await client.chat_update(channel="D1", ts=ts, text="kept, and the rest")

    assert caught.value.response["error"] == "message_not_in_streaming_state"
    assert slack.messages[ts].text == "kept, and the rest"
