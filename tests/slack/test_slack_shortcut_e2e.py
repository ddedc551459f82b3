"""End to end: "Ask <bot> about this" — the message shortcut opens the modal (views.open
on the fake Slack), its submission is answered in the message's thread with the
message as context, on both backends."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from test_slack_http import events_endpoint, http_mode, post_form

from bridge.slack.shortcuts import DEFAULT_QUESTION, SHORTCUT_CALLBACK_ID

if TYPE_CHECKING:
    from conftest import Bridge, StartBridge

pytestmark = pytest.mark.timeout(60)


async def interact(bridge: Bridge, payload: dict[str, Any]) -> None:
    envelope = await bridge.slack.send_interactive(payload)
    await bridge.slack.wait_for_ack(envelope)


async def test_shortcut_opens_a_prefilled_modal_and_answers_in_the_thread(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge() as bridge:
        slack = bridge.slack
        message = slack.add_user_message(
            "C1", "Deploys fail with <!here> E42, ask <@U3|carol>", user="U2", files=("e42.png",)
        )
        await interact(bridge, slack.message_shortcut(message, SHORTCUT_CALLBACK_ID))
        await slack.wait_until(lambda: bool(slack.views))
        [view_id] = slack.views
        [block] = slack.views[view_id]["blocks"]
        assert block["element"]["initial_value"] == DEFAULT_QUESTION

        await interact(bridge, slack.view_submission(view_id))
        [answer] = await bridge.answered("C1", message.ts)
        body = bridge.mock.requests[0].json
        assert body["question"] == DEFAULT_QUESTION
        assert body["context"].endswith(
            "U2: Deploys fail with @here E42, ask @carol [file: e42.png]"
        )
        assert "Explain this" in answer.text and "<!here>" not in answer.text


async def test_shortcut_in_a_known_thread_still_sends_the_message(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(backend="widget") as bridge:
        slack = bridge.slack
        mention = slack.add_user_message("C1", f"<@{slack.bot_user_id}> hello")
        await bridge.deliver(slack.message_event(mention))
        await bridge.answered("C1", mention.ts)
        reply = slack.add_user_message("C1", "It broke again at 10:02", thread_ts=mention.ts)

        await interact(bridge, slack.message_shortcut(reply, SHORTCUT_CALLBACK_ID, user="U4"))
        await slack.wait_until(lambda: bool(slack.views))
        [view_id] = slack.views
        await interact(bridge, slack.view_submission(view_id, "Why at 10:02?", user="U4"))
        await bridge.answered("C1", mention.ts, count=2)
        body = bridge.mock.requests[1].json
        assert body["previous_response_id"]  # the thread's conversation continues
        assert body["messages"] == [
            {"role": "user", "content": "U1: It broke again at 10:02"},
            {"role": "user", "content": "Why at 10:02?"},
        ]


async def test_shortcut_and_modal_over_signed_http(running_bridge: StartBridge) -> None:
    """The HTTP manifest sends interactivity to /slack/events as a signed `payload` form."""
    async with http_mode(running_bridge) as bridge, events_endpoint(bridge) as url:
        slack = bridge.slack
        message = slack.add_user_message("C1", "Over HTTP too", user="U2")

        async def send(payload: dict[str, Any]) -> None:
            assert await post_form(url, {"payload": json.dumps(payload)}) == 200

        await send(slack.message_shortcut(message, SHORTCUT_CALLBACK_ID))
        await slack.wait_until(lambda: bool(slack.views))
        [view_id] = slack.views
        await send(slack.view_submission(view_id))
        await bridge.answered("C1", message.ts)
        assert bridge.mock.requests[0].json["context"].endswith("U2: Over HTTP too")
