"""Hand-off to a person on Slack, and the feedback webhook, end to end through bolt
against the fake Slack."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY

from bridge.feedback.handoff import RESUMED_TEXT
from bridge.model import ThreadKey
from bridge.testing.fake_slack import FakeMessage
from bridge.testing.webhook_receiver import WebhookReceiver

if TYPE_CHECKING:
    from conftest import Bridge, StartBridge

pytestmark = pytest.mark.timeout(90)

GROUP = "S0HELPERS"
# Anything Slack turns into a notification: user, group, channel and special mentions.
MENTION = re.compile(r"<[@!#][^>]*>")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def first_answer(bridge: Bridge) -> tuple[str, FakeMessage]:
    event = bridge.mention("how do refunds work?")
    await bridge.deliver(event)
    thread = event["event"]["ts"]
    [answer] = await bridge.answered("C1", thread)
    await bridge.slack.wait_until(lambda: bool(bridge.slack.button_values(answer)))
    return thread, answer


def bot_texts(bridge: Bridge) -> list[str]:
    """Every text the bot sent to Slack, in every call and block."""
    texts = []
    for call in bridge.slack.calls:
        if call.method.startswith("chat."):
            texts.append(str(call.params.get("text") or ""))
            texts.append(str(call.params.get("blocks") or ""))
            texts.append(str(call.params.get("markdown_text") or ""))
    return texts


async def wait_for_text(bridge: Bridge, thread: str, text: str) -> FakeMessage:
    await bridge.slack.wait_until(
        lambda: any(text in m.text for m in bridge.slack.replies("C1", thread))
    )
    return next(m for m in bridge.slack.replies("C1", thread) if text in m.text)


async def test_handoff_pings_only_the_group_then_silence_then_resume(
    running_bridge: StartBridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.relay.core")
    async with running_bridge(feedback=True, bridge_handoff_slack=GROUP) as bridge:
        slack = bridge.slack
        handoffs_before = metric("bridge_handoffs_total", platform="slack")
        thread, answer = await first_answer(bridge)
        _up, _down, handoff_value = slack.button_values(answer)
        await bridge.slack.wait_for_ack(
            await slack.send_interactive(slack.press(answer, handoff_value, user="U2"))
        )
        notice = await wait_for_text(bridge, thread, f"<!subteam^{GROUP}>")
        assert [b["type"] for b in notice.blocks] == ["section", "actions"]
        assert metric("bridge_handoffs_total", platform="slack") == handoffs_before + 1
        mentions = [m for text in bot_texts(bridge) for m in MENTION.findall(text)]
        assert set(mentions) == {f"<!subteam^{GROUP}>"}  # the only mention ever made

        # A second press does not notify again.
        await bridge.slack.wait_for_ack(
            await slack.send_interactive(slack.press(answer, handoff_value, user="U3"))
        )
        await slack.wait_until(lambda: bool(slack.ephemerals_for("U3")))
        assert slack.ephemerals_for("U3") == ["This thread is already waiting for a person."]

        # Silence: neither a follow-up nor a mention in the thread is answered.
        for event in (
            bridge.message("are you still there?", thread_ts=thread, user="U1"),
            bridge.mention("hello?", thread_ts=thread, user="U1"),
        ):
            await bridge.deliver(event)
        await slack.wait_until(lambda: caplog.text.count("staying quiet") == 2)
        assert len(bridge.mock.requests) == 1

        # `resume` gives the thread back; the next follow-up is answered.
        await bridge.deliver(bridge.message("Resume", thread_ts=thread))
        await wait_for_text(bridge, thread, RESUMED_TEXT)
        await bridge.deliver(bridge.message("and exchanges?", thread_ts=thread))
        await bridge.slack.wait_until(lambda: len(bridge.mock.requests) == 2)
        await bridge.answered("C1", thread, count=4)

        # "Back to the bot" on a second hand-off works the same way.
        await bridge.slack.wait_for_ack(
            await slack.send_interactive(slack.press(answer, handoff_value, user="U2"))
        )
        await slack.wait_until(
            lambda: sum(f"<!subteam^{GROUP}>" in m.text for m in slack.replies("C1", thread)) == 2
        )
        second_notice = [m for m in slack.replies("C1", thread) if GROUP in m.text][-1]
        [resume_value] = slack.button_values(second_notice)
        await bridge.slack.wait_for_ack(
            await slack.send_interactive(slack.press(second_notice, resume_value, user="U4"))
        )
        await slack.wait_until(
            lambda: sum(RESUMED_TEXT in m.text for m in slack.replies("C1", thread)) == 2
        )
        key = ThreadKey("slack", slack.team_id, "C1", thread)
        assert not await bridge.runtime.store.handoff_open(key)


async def test_no_handoff_button_without_a_group_and_none_in_dms(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(feedback=True) as bridge:
        _thread, answer = await first_answer(bridge)
        assert len(bridge.slack.button_values(answer)) == 2  # 👍 and 👎 only
    async with running_bridge(feedback=True, bridge_handoff_slack=GROUP) as bridge:
        event = bridge.message("hi in a DM", channel="D1", channel_type="im")
        await bridge.deliver(event)
        [answer] = await bridge.answered("D1", None)
        await bridge.slack.wait_until(lambda: bool(bridge.slack.button_values(answer)))
        assert len(bridge.slack.button_values(answer)) == 2  # people cannot be fetched into a DM


async def test_a_webhook_receiver_failing_twice_then_accepting(
    running_bridge: StartBridge,
) -> None:
    delivered = metric("bridge_feedback_webhook_total", result="delivered")
    retried = metric("bridge_feedback_webhook_total", result="retried")
    async with (
        WebhookReceiver(fail_first=2) as receiver,
        running_bridge(feedback=True, bridge_feedback_webhook_url=receiver.url) as bridge,
    ):
        slack = bridge.slack
        _thread, answer = await first_answer(bridge)
        up, _down = slack.button_values(answer)
        await slack.wait_for_ack(await slack.send_interactive(slack.press(answer, up, user="U8")))
        await slack.wait_until(lambda: bool(slack.ephemerals_for("U8")))
        assert not receiver.accepted  # chat was acknowledged before the receiver accepted
        await receiver.wait_for(1)
        assert len(receiver.attempts) == 3
        assert receiver.attempts[0] == receiver.attempts[2]  # the same vote, retried
        [payload] = receiver.accepted
        event_id = up.removeprefix("up:")
        assert payload == payload | {
            "type": "bridge.feedback",
            "kind": "vote",
            "platform": "slack",
            "workspace": slack.team_id,
            "channel": "C1",
            "user": "U8",
            "vote": "up",
            "previous_vote": None,
            "reason": None,
            "event_id": event_id,
            "message_id": answer.ts,
            "question": None,  # BRIDGE_STORE_TEXT is off
            "answer": None,
        }
        assert payload["sources"] and payload["conversation_id"]
    assert metric("bridge_feedback_webhook_total", result="delivered") == delivered + 1
    assert metric("bridge_feedback_webhook_total", result="retried") == retried + 2
