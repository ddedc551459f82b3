"""End to end: the bot mentioned late in a Slack thread sends the thread's earlier
messages with the question (conversations.replies against the fake Slack), on both
backends; later turns do not; a fetch Slack refuses costs the context, not the answer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from bridge.context import CONTEXT_MAX_MESSAGES
from bridge.testing.fake_slack import FakeMessage, FakeSlack

if TYPE_CHECKING:
    from conftest import StartBridge

pytestmark = pytest.mark.timeout(60)

QUESTION = "what's the answer to the question above?"


def thirty_message_thread(slack: FakeSlack) -> tuple[FakeMessage, FakeMessage]:
    """A 30-message discussion (people's mentions, a broadcast, a file, one earlier bot
    message), then a mention of the bot in it. Returns (parent, mention)."""
    parent = slack.add_user_message("C1", "Message 0: <!channel> who knows?", user="U2")
    for n in range(1, 29):
        slack.add_user_message(
            "C1",
            f"Message {n}: ask <@U3|carol> or <!here>",
            user=f"U{n % 3 + 2}",
            thread_ts=parent.ts,
        )
    own = slack.add_user_message(
        "C1", "Message 29: my earlier answer", user=slack.bot_user_id, thread_ts=parent.ts
    )
    own.bot_id = slack.bot_id
    slack.add_user_message("C1", "", user="U2", thread_ts=parent.ts, files=("trace.log",))
    mention = slack.add_user_message(
        "C1", f"<@{slack.bot_user_id}> {QUESTION}", thread_ts=parent.ts
    )
    return parent, mention


def request_parts(body: dict[str, Any], backend: str) -> tuple[str, list[str]]:
    """(question, earlier messages as sent) from one backend request body."""
    if backend == "widget":
        *earlier, last = body["messages"]
        return last["content"], [f"{m['role']}|{m['content']}" for m in earlier]
    context = body.get("context") or ""
    return body["question"], context.split("\n\n")[1:] if context else []


@pytest.mark.parametrize("backend", ["wonderchat", "widget"])
async def test_late_mention_sends_the_capped_thread_oldest_first(
    running_bridge: StartBridge, backend: str
) -> None:
    async with running_bridge(backend=backend) as bridge:
        slack = bridge.slack
        parent, mention = thirty_message_thread(slack)
        await bridge.deliver(slack.message_event(mention))
        await bridge.answered("C1", parent.ts, count=2)  # the earlier one and the answer

        question, earlier = request_parts(bridge.mock.requests[0].json, backend)
        assert question == QUESTION
        assert len(earlier) == CONTEXT_MAX_MESSAGES
        # The newest twenty, oldest first: messages 11..28, the bot's 29, the file.
        assert "Message 11:" in earlier[0] and "Message 28:" in earlier[-3]
        assert earlier[-2].endswith("Message 29: my earlier answer")
        assert earlier[-1].endswith("[file: trace.log]")
        if backend == "widget":
            assert earlier[-2].startswith("assistant|")
            assert earlier[0].startswith("user|U")
        else:
            assert earlier[-2].startswith("assistant:")
        sent = "\n".join(earlier)
        assert "<@" not in sent and "<!" not in sent and "@carol" in sent
        assert all("Message 10:" not in line for line in earlier)

        # The next turn continues the conversation; the thread is not sent again.
        follow_up = slack.add_user_message("C1", "and why?", thread_ts=parent.ts)
        await bridge.deliver(slack.message_event(follow_up, kind="message"))
        await bridge.answered("C1", parent.ts, count=3)
        second = bridge.mock.requests[1].json
        assert request_parts(second, backend) == ("and why?", [])
        assert second.get("chatlogId") or second.get("previous_response_id")
        assert len(slack.calls_to("conversations.replies")) == 1
        # Nothing of the others' mentions reached the chat as a mention.
        for message in slack.replies("C1", parent.ts):
            if message.bot_id and message.ts != parent.ts:
                assert "<@" not in message.text and "<!" not in message.text


async def test_context_fetch_refused_still_answers(
    running_bridge: StartBridge, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bridge() as bridge:
        slack = bridge.slack
        slack.refuse("conversations.replies", "missing_scope")
        parent, mention = thirty_message_thread(slack)
        with caplog.at_level(logging.WARNING, logger="bridge.context"):
            await bridge.deliver(slack.message_event(mention))
            await bridge.answered("C1", parent.ts, count=2)
        body = bridge.mock.requests[0].json
        assert body["question"] == QUESTION and "context" not in body
        assert "earlier messages not sent" in caplog.text and "missing_scope" in caplog.text
        answer = slack.replies("C1", parent.ts)[-1]
        assert "(turn 1 of this conversation)" in answer.text


async def test_a_mention_starting_a_thread_sends_no_context(running_bridge: StartBridge) -> None:
    async with running_bridge() as bridge:
        slack = bridge.slack
        mention = slack.add_user_message("C1", f"<@{slack.bot_user_id}> hello")
        await bridge.deliver(slack.message_event(mention))
        await bridge.answered("C1", mention.ts)
        assert "context" not in bridge.mock.requests[0].json
        assert not slack.calls_to("conversations.replies")


@pytest.mark.parametrize("backend", ["wonderchat", "widget"])
async def test_echoed_context_never_pings(running_bridge: StartBridge, backend: str) -> None:
    """A chatbot that repeats the thread back (other people's mentions included) still
    cannot make the bot ping anyone."""
    async with running_bridge(backend=backend) as bridge:
        slack = bridge.slack
        parent = slack.add_user_message("C1", "<!channel> <!here> deploy is down", user="U2")
        slack.add_user_message(
            "C1", "cc <@U3|carol> <!subteam^S1|@oncall> <@U4>", user="U3", thread_ts=parent.ts
        )
        mention = slack.add_user_message(
            "C1", f"<@{slack.bot_user_id}> [mock:echo-context] repeat", thread_ts=parent.ts
        )
        await bridge.deliver(slack.message_event(mention))
        [answer] = await bridge.answered("C1", parent.ts)
        assert "carol" in answer.text and "deploy is down" in answer.text  # it was echoed
        assert "<!" not in answer.text and "<@" not in answer.text
        assert all(answer.text[i + 1] == "\u200b" for i, c in enumerate(answer.text) if c == "@")
