"""Routing rules for Slack events: pure functions on plain payloads."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.model import ThreadKey
from bridge.slack.events import Route, is_ignored, is_reset, route_event, strip_mention

BOT = "UBOT"
TEAM = "T1"


def body(event: dict[str, Any], event_id: str = "Ev1") -> dict[str, Any]:
    return {"type": "event_callback", "team_id": TEAM, "event_id": event_id, "event": event}


def message(**fields: Any) -> dict[str, Any]:
    event = {"type": "message", "user": "U1", "channel": "C1", "ts": "10.1", "text": "hi"}
    event.update(fields)
    return event


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@UBOT> what is up?", "what is up?"),
        ("what <@UBOT>   is up", "what is up"),
        ("<@UBOT|bridge> hello", "hello"),
        ("<@UBOT><@UBOT>", ""),
        ("ask <@UOTHER> too", "ask <@UOTHER> too"),
        ("line one\n<@UBOT> line two", "line one\n line two"),
    ],
)
def test_strip_mention_removes_only_the_bot(text: str, expected: str) -> None:
    assert strip_mention(text, BOT) == expected


@pytest.mark.parametrize(
    "event",
    [
        message(bot_id="B1"),
        message(bot_id="BBOT", user=BOT),
        message(user=BOT),
        message(subtype="message_changed"),
        message(subtype="message_deleted"),
        message(subtype="channel_join"),
        message(subtype="bot_message"),
        message(user=None),
        message(bot_profile={"id": "B2"}),
    ],
)
def test_bots_edits_deletions_and_subtypes_are_ignored(event: dict[str, Any]) -> None:
    assert is_ignored(event, BOT)
    assert route_event(body({**event, "channel_type": "im"}), BOT) is None


@pytest.mark.parametrize("subtype", [None, "thread_broadcast", "file_share"])
def test_human_messages_are_not_ignored(subtype: str | None) -> None:
    assert not is_ignored(message(subtype=subtype), BOT)


def test_a_thread_reply_also_sent_to_the_channel_is_a_follow_up() -> None:
    event = message(ts="12.0", thread_ts="10.1", channel_type="channel", subtype="thread_broadcast")
    incoming = route_event(body(event), BOT)
    assert incoming is not None and incoming.route is Route.FOLLOW_UP


@pytest.mark.parametrize(
    ("text", "expected"),
    [("reset", True), ("  ReSeT \n", True), ("reset please", False), ("", False)],
)
def test_reset_is_the_exact_word(text: str, expected: bool) -> None:
    assert is_reset(text) is expected


def test_top_level_mention_starts_a_thread_on_the_message() -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "channel": "C1",
        "ts": "10.1",
        "text": "<@UBOT> how do I deploy?",
    }
    incoming = route_event(body(event, "EvM"), BOT)
    assert incoming is not None
    assert incoming.route is Route.ANSWER
    assert incoming.reply_thread_ts == "10.1"
    assert incoming.team_id == TEAM
    q = incoming.question
    assert q.thread == ThreadKey("slack", TEAM, "C1", "10.1")
    assert (q.text, q.user_id, q.event_id, q.is_dm) == ("how do I deploy?", "U1", "EvM", False)


def test_mention_inside_a_thread_answers_in_that_thread() -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "channel": "C1",
        "ts": "12.0",
        "thread_ts": "10.1",
        "text": "<@UBOT> and then?",
    }
    incoming = route_event(body(event), BOT)
    assert incoming is not None
    assert incoming.reply_thread_ts == "10.1"
    assert incoming.question.thread.thread == "10.1"


def test_channel_thread_reply_is_a_follow_up() -> None:
    incoming = route_event(body(message(ts="12.0", thread_ts="10.1", channel_type="channel")), BOT)
    assert incoming is not None
    assert incoming.route is Route.FOLLOW_UP
    assert incoming.question.thread == ThreadKey("slack", TEAM, "C1", "10.1")
    assert incoming.reply_thread_ts == "10.1"


def test_channel_thread_reply_mentioning_the_bot_is_left_to_app_mention() -> None:
    event = message(ts="12.0", thread_ts="10.1", channel_type="channel", text="<@UBOT> more")
    assert route_event(body(event), BOT) is None


@pytest.mark.parametrize("thread_ts", [None, "10.1"])
@pytest.mark.parametrize("channel_type", ["channel", "group"])
def test_top_level_channel_messages_are_auto_routes_in_a_thread_of_their_own(
    thread_ts: str | None, channel_type: str
) -> None:
    # Answered only where a route says mode = "all" (the adapter asks the relay). A
    # thread parent carries thread_ts == ts; it is not a reply.
    event = message(ts="10.1", channel_type=channel_type)
    if thread_ts:
        event["thread_ts"] = thread_ts
    incoming = route_event(body(event), BOT)
    assert incoming is not None and incoming.route is Route.AUTO
    assert incoming.reply_thread_ts == "10.1"
    assert incoming.question.thread == ThreadKey("slack", TEAM, "C1", "10.1")


def test_top_level_messages_mentioning_the_bot_or_in_group_dms_are_not_auto_routes() -> None:
    mentioned = message(ts="10.1", channel_type="channel", text="<@UBOT> hi")
    group_dm = message(ts="10.1", channel_type="mpim")
    bot = message(ts="10.1", channel_type="channel", bot_id="B2", subtype="bot_message")
    for event in (mentioned, group_dm, bot):
        assert route_event(body(event), BOT) is None


def test_top_level_dm_shares_one_conversation_per_dm_channel() -> None:
    first = route_event(body(message(channel="D1", channel_type="im", ts="1.0")), BOT)
    second = route_event(body(message(channel="D1", channel_type="im", ts="2.0"), "Ev2"), BOT)
    assert first is not None and second is not None
    assert first.route is Route.ANSWER
    assert first.question.is_dm
    assert first.reply_thread_ts is None  # reply at the top level of the DM
    assert first.question.thread == second.question.thread == ThreadKey("slack", TEAM, "D1", "D1")


def test_dm_thread_is_its_own_conversation() -> None:
    event = message(channel="D1", channel_type="im", ts="5.0", thread_ts="4.0")
    incoming = route_event(body(event), BOT)
    assert incoming is not None
    assert incoming.question.thread.thread == "4.0"
    assert incoming.reply_thread_ts == "4.0"


def test_reset_in_a_dm() -> None:
    incoming = route_event(body(message(channel="D1", channel_type="im", text=" Reset ")), BOT)
    assert incoming is not None
    assert incoming.route is Route.RESET


def test_reset_in_a_channel_thread_is_just_a_follow_up() -> None:
    event = message(ts="12.0", thread_ts="10.1", channel_type="channel", text="reset")
    incoming = route_event(body(event), BOT)
    assert incoming is not None and incoming.route is Route.FOLLOW_UP


@pytest.mark.parametrize("kind", ["reaction_added", "assistant_thread_started", "app_home_opened"])
def test_other_event_types_are_not_routed(kind: str) -> None:
    assert route_event(body({"type": kind, "user": "U1", "channel": "C1", "ts": "1"}), BOT) is None


def test_team_falls_back_to_the_event_team() -> None:
    payload = body(message(channel="D1", channel_type="im", team="T9"))
    del payload["team_id"]
    incoming = route_event(payload, BOT)
    assert incoming is not None and incoming.team_id == "T9"
