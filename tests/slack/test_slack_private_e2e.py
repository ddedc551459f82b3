"""End to end: the Slack `/ask` slash command answers privately through its
response_url — paced so the final always lands within Slack's allowance of five uses —
and "Share in channel" posts the finished answer publicly, attributed to whoever
pressed it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from test_slack_http import events_endpoint, http_mode, post_form

from bridge.private import SHARE_LABEL, SHARED_NOTICE
from bridge.slack.private import ASK_COMMAND, RESPONSE_URL_USES, SHARE_ACTION_ID
from bridge.testing.fake_slack import ResponseUrl

if TYPE_CHECKING:
    from conftest import Bridge, StartBridge

pytestmark = pytest.mark.timeout(90)

SOURCE_URL = "https://docs.example.com/"
FINAL_END = "Is there anything else I can help you with?"


def has_share_button(message: dict[str, Any]) -> bool:
    return any(
        element.get("action_id") == SHARE_ACTION_ID
        for block in message.get("blocks") or ()
        if block.get("type") == "actions"
        for element in block["elements"]
    )


async def ask_privately(bridge: Bridge, text: str) -> tuple[dict[str, Any], ResponseUrl]:
    slack = bridge.slack
    payload = slack.slash_command(ASK_COMMAND, text)
    await slack.wait_for_ack(await slack.send_slash_command(payload))
    shown = slack.response_url_of(payload)
    await slack.wait_until(
        lambda: (
            bridge.relay.active_count == 0
            and bool(shown.messages)
            and has_share_button(shown.messages[-1])
        ),
        within=60,
    )
    return payload, shown


async def test_slow_private_answer_lands_within_the_allowance_and_is_shared(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        slack = bridge.slack
        payload, shown = await ask_privately(bridge, "[mock:slow] our secret plan")
        assert len(shown.posts) <= RESPONSE_URL_USES
        assert len(shown.posts) >= 3  # thinking…, first words, …, final
        [message] = shown.messages  # every use after the first replaced it in place
        text = ResponseUrl.text_of(message)
        assert FINAL_END in text and SOURCE_URL in text and "▌" not in text
        assert all(post["response_type"] == "ephemeral" for post in shown.posts)
        assert slack.replies("C1", None) == []  # nothing public yet
        [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert button["text"]["text"] == SHARE_LABEL

        press = slack.button_press(payload, SHARE_ACTION_ID, user="U2")
        await slack.wait_for_ack(await slack.send_interactive(press))
        await slack.wait_until(lambda: bool(slack.replies("C1", None)))
        [shared] = slack.replies("C1", None)
        assert shared.text.startswith("*Shared by u2:*")
        assert "our secret plan" in shared.text and SOURCE_URL in shared.text
        confirm = slack.response_url_of(press)
        await slack.wait_until(lambda: bool(confirm.messages))
        assert ResponseUrl.text_of(confirm.messages[0]) == SHARED_NOTICE
        assert bridge.mock.requests[0].json["question"] == "[mock:slow] our secret plan"


async def test_long_private_answer_in_parts_still_ends_within_the_allowance(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        _payload, shown = await ask_privately(bridge, "[mock:long] everything")
        assert len(shown.posts) <= RESPONSE_URL_USES
        assert len(shown.messages) >= 2  # more than one Slack message
        assert not any("▌" in ResponseUrl.text_of(m) for m in shown.messages)


async def test_private_ask_over_signed_http(running_bridge: StartBridge) -> None:
    """The HTTP manifest sends /ask to /slack/events, form-encoded and signed."""
    async with http_mode(running_bridge) as bridge, events_endpoint(bridge) as url:
        payload = bridge.slack.slash_command(ASK_COMMAND, "asked over http")
        assert await post_form(url, payload) == 200
        shown = bridge.slack.response_url_of(payload)
        await bridge.slack.wait_until(
            lambda: bool(shown.messages) and has_share_button(shown.messages[-1])
        )
        assert "asked over http" in ResponseUrl.text_of(shown.messages[-1])
