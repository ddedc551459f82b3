"""The fake Slack refuses calls the real Web API refuses, with the same error codes, so a
wrong call from the adapter fails in tests. Driven by the real slack_sdk client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.testing.fake_slack import FakeSlack

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
    client: AsyncWebClient,
) -> None:
    await client.chat_startStream(channel="D1", thread_ts="1.0")
    await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.0", status="")


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
    async with FakeSlack(tiers={"chat.update": 2}) as slack:
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
    assert 0 < float(caught.value.response.headers["Retry-After"]) <= 60
    assert slack.messages[posted["ts"]].text == "edit 1"
    assert slack.refused == [("chat.update", "ratelimited")]


async def test_the_tier_window_slides_so_a_call_after_retry_after_succeeds() -> None:
    async with FakeSlack(tiers={"chat.postMessage": 1}, minute=1.0) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C1", text="first")
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C1", text="too soon")
        await asyncio.sleep(float(caught.value.response.headers["Retry-After"]))
        await client.chat_postMessage(channel="C1", text="after the window")

    assert [m.text for m in slack.messages.values()] == ["first", "after the window"]
