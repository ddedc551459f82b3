"""Per-channel routing and auto-answer channels, end to end on Slack: the real bolt app,
relay and backend clients against the fake Slack and several mock chatbots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MOCK_DELAY, StartBridge

from bridge.testing.mock_backend import MockBackend

KEY_VARIABLE = "ROUTE_B_WIDGET_KEY"


@dataclass
class Routed:
    """Two mock chatbots and the routes file that sends two channels to them."""

    a: MockBackend
    b: MockBackend
    routes: Path


@pytest.fixture
async def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Routed]:
    monkeypatch.setenv(KEY_VARIABLE, "key-b")
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(MockBackend(MOCK_DELAY, chatbot_id="bot-a"))
        b = await stack.enter_async_context(MockBackend(MOCK_DELAY, api_key="key-b"))
        yield Routed(a, b, write_routes(tmp_path / "routes.toml", a, b))


def write_routes(path: Path, a: MockBackend, b: MockBackend, *, swap: bool = False) -> Path:
    """C-A → Wonderchat bot-a (auto-answer, with context), C-B → Widget model-b;
    `swap` routes C-A to the Widget chatbot instead."""
    wonderchat = f'backend = "wonderchat"\nchatbot_id = "bot-a"\napi_url = "{a.url}"\n'
    widget = f'backend = "widget"\napi_url = "{b.url}"\nmodel = "model-b"\n'
    widget += f'api_key_env = "{KEY_VARIABLE}"\n'
    path.write_text(
        '[[route]]\nplatform = "slack"\nchannel = "C-A"\nmode = "all"\n'
        'context = "You answer team A."\n'
        + (widget if swap else wonderchat)
        + '\n[[route]]\nplatform = "slack"\nteam = "T0FAKE"\nchannel = "C-B"\n'
        + widget
    )
    return path


async def test_two_channels_get_their_own_chatbots_and_a_follow_up_stays(
    running_bridge: StartBridge, routed: Routed
) -> None:
    a, b, routes = routed.a, routed.b, routed.routes
    async with running_bridge(bridge_routes_file=str(routes)) as bridge:
        in_a = bridge.mention("question for A", channel="C-A")
        in_b = bridge.mention("question for B", channel="C-B")
        elsewhere = bridge.mention("question for the default", channel="C1")
        for event in (in_a, in_b, elsewhere):
            await bridge.deliver(event)
        for event in (in_a, in_b, elsewhere):
            channel, ts = event["event"]["channel"], event["event"]["ts"]
            [reply] = await bridge.answered(channel, ts)
            assert event["event"]["text"].split("> ")[1] in reply.text
        [asked_a] = a.requests
        assert asked_a.json["chatbotId"] == "bot-a"
        assert asked_a.json["context"] == "You answer team A."
        [asked_b] = b.requests
        assert asked_b.json["model"] == "model-b"
        assert asked_b.headers["Authorization"] == "Bearer key-b"
        [asked_default] = bridge.mock.requests
        assert asked_default.json["question"] == "question for the default"

        follow_up = bridge.message("and more for A", channel="C-A", thread_ts=in_a["event"]["ts"])
        await bridge.deliver(follow_up)
        await bridge.answered("C-A", in_a["event"]["ts"], count=2)
        assert len(a.requests) == 2 and a.requests[1].json["chatlogId"]
        assert len(b.requests) == 1 and len(bridge.mock.requests) == 1


async def test_a_conversation_keeps_its_chatbot_when_the_routes_change(
    running_bridge: StartBridge, routed: Routed
) -> None:
    a, b, routes = routed.a, routed.b, routed.routes
    async with running_bridge(bridge_routes_file=str(routes)) as bridge:
        first = bridge.mention("started on A", channel="C-A")
        await bridge.deliver(first)
        await bridge.answered("C-A", first["event"]["ts"])
    thread_ts = first["event"]["ts"]
    write_routes(routes, a, b, swap=True)  # C-A now goes to the Widget chatbot
    async with running_bridge(bridge_routes_file=str(routes)) as bridge:
        await bridge.deliver(bridge.message("still A?", channel="C-A", thread_ts=thread_ts))
        await bridge.answered("C-A", thread_ts)
        assert [r.json["question"] for r in a.requests] == ["started on A", "still A?"]
        assert a.requests[1].json["chatlogId"]
        fresh = bridge.mention("new thread", channel="C-A")
        await bridge.deliver(fresh)
        await bridge.answered("C-A", fresh["event"]["ts"])
        assert [r.json["messages"][-1]["content"] for r in b.requests] == ["new thread"]


async def test_auto_answer_channel_answers_top_level_messages_but_never_bots(
    running_bridge: StartBridge, routed: Routed
) -> None:
    a, routes = routed.a, routed.routes
    async with running_bridge(bridge_routes_file=str(routes)) as bridge:
        bot_post = bridge.message(
            "I am another bot", channel="C-A", bot_id="BOTHER", subtype="bot_message"
        )
        await bridge.deliver(bot_post)
        unrouted = bridge.message("no mention, not auto", channel="C1")
        await bridge.deliver(unrouted)
        person = bridge.message("how do refunds work?", channel="C-A")
        await bridge.deliver(person)
        [reply] = await bridge.answered("C-A", person["event"]["ts"])
        assert "how do refunds work?" in reply.text
        follow_up = bridge.message(
            "and for annual plans?", channel="C-A", thread_ts=person["event"]["ts"]
        )
        await bridge.deliver(follow_up)
        await bridge.answered("C-A", person["event"]["ts"], count=2)
        assert [r.json["question"] for r in a.requests] == [
            "how do refunds work?",
            "and for annual plans?",
        ]
        assert a.requests[1].json["chatlogId"]
        assert not bridge.slack.replies("C-A", bot_post["event"]["ts"])
        assert not bridge.slack.replies("C1", unrouted["event"]["ts"])
        assert not bridge.mock.requests
