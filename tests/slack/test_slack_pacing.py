"""Pacing end to end: real slack-bolt + relay + renderer against a fake Slack enforcing
Slack's limits (method tiers, per-channel posts, stream expiry) at TEST_SPEED."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

from bridge.testing.fake_slack import FakeSlack
from bridge.testing.mock_backend import TERSE_TEXT
from bridge.testing.slack_limits import SlackLimits

if TYPE_CHECKING:
    from conftest import StartBridge

from conftest import FAST_RATES, TEST_SPEED

SOURCE_URL = "https://docs.example.com/getting-started"
PLACEHOLDER = "_Thinking…_"


def rate_limited(slack: FakeSlack) -> list[str]:
    return [method for method, error in slack.refused if error == "ratelimited"]


async def test_several_answers_in_one_channel_draw_no_429(running_bridge: StartBridge) -> None:
    async with running_bridge(slack_streaming="update") as bridge:
        events = [bridge.mention(f"question {n}") for n in range(6)]
        await asyncio.gather(*(bridge.deliver(event) for event in events))
        for n, event in enumerate(events):
            [reply] = await bridge.answered("C1", event["event"]["ts"])
            assert f"question {n}" in reply.text and SOURCE_URL in reply.text
        assert len(bridge.slack.calls_to("chat.postMessage")) == 6
        assert rate_limited(bridge.slack) == []


async def test_a_first_words_edit_waiting_for_budget_becomes_the_final(
    running_bridge: StartBridge,
) -> None:
    # One chat.update per Slack second at TEST_SPEED... slowed to one per real second, so
    # the second answer ends while its first call still waits.
    rates = replace(FAST_RATES, update_per_minute=60, update_burst=1)
    # An edit interval longer than a token's wait: no ending is posted anew instead.
    async with running_bridge(
        slack_streaming="update", rates=rates, bridge_edit_interval=2.0
    ) as bridge:
        events = [bridge.mention("first", channel="C1"), bridge.mention("second", channel="C2")]
        await asyncio.gather(*(bridge.deliver(event) for event in events))
        replies = [
            (await bridge.answered(channel, event["event"]["ts"]))[0]
            for channel, event in zip(("C1", "C2"), events, strict=True)
        ]
        for reply in replies:
            assert SOURCE_URL in reply.text and "▌" not in reply.text
        one_call = [reply for reply in replies if reply.history == [PLACEHOLDER, reply.text]]
        assert one_call, [reply.history for reply in replies]  # one edit: straight to final
        assert len(bridge.slack.calls_to("chat.update")) <= 3
        assert rate_limited(bridge.slack) == []


async def test_a_final_that_looks_like_a_status_line_still_goes_first(
    running_bridge: StartBridge,
) -> None:
    rates = replace(FAST_RATES, update_per_minute=30, update_burst=1)  # a token every 2 s
    async with running_bridge(slack_streaming="update", rates=rates) as bridge:
        busy = [bridge.mention("[mock:slow] busy", channel=f"C{n}") for n in range(1, 5)]
        await asyncio.gather(*(bridge.deliver(event) for event in busy))
        await bridge.slack.wait_until(lambda: len(bridge.slack.calls_to("chat.update")) >= 2)
        terse = bridge.mention("[mock:terse] is it?", channel="C9")
        await bridge.deliver(terse)
        await bridge.slack.wait_until(
            lambda: (
                [m.text for m in bridge.slack.replies("C9", terse["event"]["ts"])] == [TERSE_TEXT]
            )
        )
        [reply] = bridge.slack.replies("C9", terse["event"]["ts"])
        updates = bridge.slack.calls_to("chat.update")
        posted_at = bridge.slack.calls_to("chat.postMessage")[1 + len(busy) - 1].at
        before = [call for call in updates if call.at > posted_at and call.params["ts"] != reply.ts]
        # Four answers' progress edits were waiting first; the final overtakes them all,
        # by chat.update or posted anew (at most one token may already have been given).
        assert len(before) <= 1, before
        assert reply.text == TERSE_TEXT and PLACEHOLDER not in reply.history[1:]


async def test_under_saturation_endings_are_posted_anew_and_placeholders_deleted(
    running_bridge: StartBridge,
) -> None:
    rates = replace(FAST_RATES, update_per_minute=30, update_burst=1)  # a token every 2 s
    async with running_bridge(slack_streaming="update", rates=rates) as bridge:
        events = [bridge.mention(f"question {n}", channel=f"C{n}") for n in range(1, 7)]
        await asyncio.gather(*(bridge.deliver(event) for event in events))
        for n, event in enumerate(events, start=1):
            await bridge.slack.wait_until(
                lambda c=f"C{n}", ts=event["event"]["ts"]: any(
                    SOURCE_URL in m.text for m in bridge.slack.replies(c, ts)
                )
            )
            await bridge.slack.wait_until(lambda: bridge.relay.active_count == 0)
            [reply] = bridge.slack.replies(f"C{n}", event["event"]["ts"])  # shown once
            assert f"question {n}" in reply.text and "Thinking" not in reply.text
        assert bridge.slack.deleted  # some placeholders gave way to their answers
        assert all(m.text == PLACEHOLDER for m in bridge.slack.deleted)
        assert rate_limited(bridge.slack) == []


async def test_a_stream_slack_ends_mid_answer_still_shows_the_whole_answer(
    running_bridge: StartBridge,
) -> None:
    # Slack's 5-minute stream lifetime, shrunk to 0.1 s of real time.
    limits = SlackLimits(speed=TEST_SPEED, stream_lifetime=0.1 * TEST_SPEED)
    async with running_bridge(limits=limits) as bridge:
        event = bridge.mention("a long story")
        await bridge.deliver(event)
        [reply] = await bridge.answered("C1", event["event"]["ts"])

        assert bridge.slack.calls_to("chat.startStream")
        assert ("chat.appendStream", "message_not_in_streaming_state") in bridge.slack.refused
        assert "a long story" in reply.text and SOURCE_URL in reply.text
        assert not reply.streaming
        assert rate_limited(bridge.slack) == []
