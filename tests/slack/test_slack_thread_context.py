"""Slack markup in a thread's earlier messages becomes plain, inert text."""

from __future__ import annotations

from bridge.slack.thread_context import plain_text, to_context


def test_mentions_and_links_lose_their_control_syntax() -> None:
    text = plain_text(
        "<@U1> and <@U2|ana>: <!here> <!channel> <!subteam^S1|@oncall> in <#C1|general> "
        "see <https://x.test/a|the doc> or <https://x.test/b> &lt;@U3&gt; 1 &lt; 2"
    )
    assert "<@" not in text and "<!" not in text and "<#" not in text
    assert text.startswith("@U1 and @ana: @here @channel @oncall in #general")
    assert "the doc (https://x.test/a)" in text and "https://x.test/b" in text
    assert "‹@U3>" in text and "1 < 2" in text


def test_own_messages_are_assistant_turns_and_files_are_noted() -> None:
    own = to_context({"user": "UBOT", "text": "Earlier answer"}, bot_user_id="UBOT")
    assert own.from_bot
    other = to_context(
        {"user": "U9", "text": "log", "files": [{"name": "crash.log"}]}, bot_user_id="UBOT"
    )
    assert not other.from_bot and other.author == "U9"
    assert other.text == "log [file: crash.log]"
    named = to_context(
        {"user": "U9", "user_profile": {"display_name": "Ana"}, "text": "x"}, bot_user_id=""
    )
    assert named.author == "Ana"
