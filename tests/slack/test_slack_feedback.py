"""👍/👎 on Slack answers, end to end: the real bolt app over Socket Mode and signed HTTP
against the fake Slack, the real relay, store and mock backend."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from bridge.feedback import MAX_REASON_CHARS
from bridge.store import VoteValue
from bridge.testing.fake_slack import FakeMessage, FakeSlack, signed_headers
from bridge.testing.mock_backend import MockBackend
from bridge.testing.slack_interactivity import interactive_request

if TYPE_CHECKING:
    from conftest import Bridge, StartBridge

pytestmark = pytest.mark.timeout(90)

SECRET = "interactivity-signing-secret"


def votes(platform: str, vote: str) -> float:
    value = REGISTRY.get_sample_value("bridge_feedback_total", {"platform": platform, "vote": vote})
    return value or 0.0


async def answer_with_buttons(bridge: Bridge, text: str = "how do refunds work?") -> FakeMessage:
    """Mention the bot in C1 and return the answer's last message once it has buttons."""
    event = bridge.mention(text)
    await bridge.deliver(event)
    replies = await bridge.answered("C1", event["event"]["ts"])
    last = replies[-1]
    await bridge.slack.wait_until(lambda: bool(bridge.slack.button_values(last)))
    return last


async def press(bridge: Bridge, payload: dict[str, Any]) -> None:
    await bridge.slack.wait_for_ack(await bridge.slack.send_interactive(payload))


async def acknowledged(bridge: Bridge, user: str, count: int) -> list[str]:
    await bridge.slack.wait_until(lambda: len(bridge.slack.ephemerals_for(user)) >= count)
    return bridge.slack.ephemerals_for(user)


async def test_vote_change_of_vote_and_a_reason_over_socket_mode(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(feedback=True) as bridge:
        slack = bridge.slack
        last = await answer_with_buttons(bridge)
        [feedback] = [b for b in last.blocks if b["type"] == "context_actions"]
        assert feedback["elements"][0]["type"] == "feedback_buttons"
        up, down = slack.button_values(last)
        assert up.startswith("up:") and down.startswith("down:")
        assert "how do refunds work?" in last.text  # the answer text stays with the buttons
        before_up, before_down = votes("slack", "up"), votes("slack", "down")

        await press(bridge, slack.press(last, up, user="U2"))
        assert (await acknowledged(bridge, "U2", 1))[-1] == "Thanks for the 👍 — glad it helped."
        event_id = up.removeprefix("up:")
        store = bridge.runtime.store
        vote = await store.get_vote("slack", event_id, "U2")
        assert vote.vote is VoteValue.UP and vote.message_id == last.ts
        assert vote.sources  # stored with the sources the answer showed

        await press(bridge, slack.press(last, down, user="U2"))
        assert (await acknowledged(bridge, "U2", 2))[-1] == "Changed your vote to 👎."
        await slack.wait_until(lambda: bool(slack.views))
        [(view_id, view)] = slack.views.items()
        assert view["title"]["text"] == "What was wrong?"
        await press(bridge, slack.view_submission(view_id, "The link is outdated.", user="U2"))
        assert (await acknowledged(bridge, "U2", 3))[-1].startswith("Thanks — your note was saved")
        vote = await store.get_vote("slack", event_id, "U2")
        assert vote.vote is VoteValue.DOWN and vote.reason == "The link is outdated."
        assert votes("slack", "up") == before_up + 1
        assert votes("slack", "down") == before_down + 1

        # Pressing 👎 again changes nothing and counts nothing.
        await press(bridge, slack.press(last, down, user="U2"))
        assert (await acknowledged(bridge, "U2", 4))[-1] == "You already gave this answer a 👎."
        assert votes("slack", "down") == before_down + 1
        assert all(e.thread_ts == last.thread_ts for e in slack.ephemerals)


async def test_a_workspace_refusing_feedback_buttons_gets_plain_buttons(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(feedback=True) as bridge:
        bridge.slack.feedback_buttons_supported = False
        last = await answer_with_buttons(bridge)
        assert [b["type"] for b in last.blocks] == ["markdown", "actions"]
        up, _down = bridge.slack.button_values(last)
        await press(bridge, bridge.slack.press(last, up, user="U3"))
        assert (await acknowledged(bridge, "U3", 1)) == ["Thanks for the 👍 — glad it helped."]
        second = await answer_with_buttons(bridge, "and exchanges?")
        refused = [error for method, error in bridge.slack.refused if method == "chat.update"]
        assert refused == ["invalid_blocks"]  # remembered: the second answer went straight
        assert second.blocks[-1]["type"] == "actions"


async def test_errors_and_refusals_get_no_buttons(running_bridge: StartBridge) -> None:
    async with running_bridge(feedback=True, bridge_allowed_channels="C1") as bridge:
        failed = bridge.mention("[mock:error] this fails")
        await bridge.deliver(failed)
        [reply] = await bridge.answered("C1", failed["event"]["ts"])
        assert "could not be completed" in reply.text
        refused = bridge.mention("not here", channel="C9")
        bridge.slack.channels.add("C9")
        await bridge.deliver(refused)
        [notice] = await bridge.answered("C9", refused["event"]["ts"])
        assert "not enabled here" in notice.text
        good = await answer_with_buttons(bridge)  # buttons come after a finished answer
        assert good.blocks[-1]["type"] == "context_actions"
        assert not reply.blocks[1:] and not notice.blocks[1:]


async def test_forged_unknown_and_deleted_answers_get_a_clear_note(
    running_bridge: StartBridge,
) -> None:
    async with running_bridge(feedback=True) as bridge:
        slack = bridge.slack
        last = await answer_with_buttons(bridge)
        up, _ = slack.button_values(last)
        unknown = (
            "I can't find that answer any more (it may have been removed), so nothing was saved."
        )
        for value in ("up:EvNOSUCHTURN", "sideways:" + up.removeprefix("up:"), "garbage"):
            await press(bridge, slack.press(last, value, user="U4", action_id="bridge_vote"))
        await press(
            bridge, slack.press(last, up.replace("up:", "up:x"), user="U4", action_id="bridge_vote")
        )
        notes = await acknowledged(bridge, "U4", 4)
        assert notes == [unknown] * 4
        # A vote on an answer whose turn was deleted (the database was pruned).
        path = bridge.settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM turns WHERE event_id = ?", (up.removeprefix("up:"),))
        await press(bridge, slack.press(last, up, user="U4"))
        assert (await acknowledged(bridge, "U4", 5))[-1] == unknown
        assert await bridge.runtime.store.get_vote("slack", up.removeprefix("up:"), "U4") is None


async def test_an_oversized_reason_is_cut_to_the_stated_limit(running_bridge: StartBridge) -> None:
    async with running_bridge(feedback=True) as bridge:
        slack = bridge.slack
        last = await answer_with_buttons(bridge)
        _, down = slack.button_values(last)
        await press(bridge, slack.press(last, down, user="U5"))
        await slack.wait_until(lambda: bool(slack.views))
        [view_id] = slack.views
        assert slack.views[view_id]["blocks"][0]["element"]["max_length"] == MAX_REASON_CHARS
        await press(bridge, slack.view_submission(view_id, "x" * 3000, user="U5"))
        note = (await acknowledged(bridge, "U5", 2))[-1]
        assert "1,000 characters" in note and "3,000" in note
        vote = await bridge.runtime.store.get_vote("slack", down.removeprefix("down:"), "U5")
        assert vote.reason == "x" * MAX_REASON_CHARS


async def test_a_vote_on_an_answer_from_before_a_restart(running_bridge: StartBridge) -> None:
    async with FakeSlack() as slack, MockBackend(delay=0.005) as mock:
        async with running_bridge(feedback=True, slack=slack, mock=mock) as first:
            last = await answer_with_buttons(first)
        up, _ = slack.button_values(last)
        async with running_bridge(feedback=True, slack=slack, mock=mock) as second:
            await press(second, slack.press(last, up, user="U6"))
            assert (await acknowledged(second, "U6", 1)) == ["Thanks for the 👍 — glad it helped."]
            vote = await second.runtime.store.get_vote("slack", up.removeprefix("up:"), "U6")
            assert vote is not None and vote.vote is VoteValue.UP


async def post_signed(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> int:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status


async def test_signed_http_interactivity_and_forged_requests(running_bridge: StartBridge) -> None:
    from test_slack_http import events_endpoint

    async with (
        running_bridge(feedback=True, slack_app_token=None, slack_signing_secret=SECRET) as bridge,
        events_endpoint(bridge) as url,
        aiohttp.ClientSession() as session,
    ):
        slack = bridge.slack
        event = bridge.mention("over http")
        raw = json.dumps(event).encode()
        assert await post_signed(session, url, raw, signed_headers(SECRET, raw)) == 200
        [reply] = await bridge.answered("C1", event["event"]["ts"])
        await slack.wait_until(lambda: bool(slack.button_values(reply)))
        up, down = slack.button_values(reply)

        forged = interactive_request("not-the-secret", slack.press(reply, up, user="U7"))
        assert await post_signed(session, url, *forged) == 401
        genuine = interactive_request(SECRET, slack.press(reply, down, user="U7"))
        assert await post_signed(session, url, *genuine) == 200
        assert (await acknowledged(bridge, "U7", 1)) == [
            "Thanks for the 👎 — that helps us improve."
        ]
        await slack.wait_until(lambda: bool(slack.views))
        [view_id] = slack.views
        reason = interactive_request(SECRET, slack.view_submission(view_id, "wrong", user="U7"))
        assert await post_signed(session, url, *reason) == 200
        await acknowledged(bridge, "U7", 2)
        vote = await bridge.runtime.store.get_vote("slack", up.removeprefix("up:"), "U7")
        assert vote.vote is VoteValue.DOWN and vote.reason == "wrong"
