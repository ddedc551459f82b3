"""Pure Discord decisions: mention stripping, reset words, thread names, metric labels,
conversation keys, invite permissions, gateway redirection, failure sentences."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.discord.connect import redirect_gateway
from bridge.discord.filters import (
    FALLBACK_THREAD_NAME,
    THREAD_NAME_LIMIT,
    is_reset_command,
    strip_bot_mention,
    thread_name,
)
from bridge.discord.invite import invite_url
from bridge.discord.routing import AnswerIndex, dm_key, thread_key
from bridge.discord.surface import describe_failure
from bridge.discord.tracing import route_label
from bridge.errors import ConfigError
from bridge.model import ThreadKey

BOT = 700000000000000001


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"<@{BOT}> what is SSE?", "what is SSE?"),
        (f"<@!{BOT}>   what\n is  SSE?", "what is SSE?"),
        (f"ask <@{BOT}> now <@{BOT}>", "ask now"),
        (f"<@{BOT}>", ""),
        ("<@123> is a person, keep them", "<@123> is a person, keep them"),
    ],
)
def test_strip_bot_mention(content: str, expected: str) -> None:
    assert strip_bot_mention(content, BOT) == expected


@pytest.mark.parametrize("text", ["reset", " RESET ", "/reset", "!reset"])
def test_reset_words(text: str) -> None:
    assert is_reset_command(text)


@pytest.mark.parametrize("text", ["reset my password", "", "resets"])
def test_not_reset(text: str) -> None:
    assert not is_reset_command(text)


def test_thread_name_short_question_kept_on_one_line() -> None:
    assert thread_name("How do I\n  reset my password?") == "How do I reset my password?"


def test_thread_name_drops_mention_syntax_and_falls_back() -> None:
    assert thread_name("<@123> <@&456> <#789>") == FALLBACK_THREAD_NAME
    assert thread_name("   ") == FALLBACK_THREAD_NAME
    assert thread_name("hi <@123> there") == "hi there"


def test_thread_name_long_question_cut_at_a_word() -> None:
    question = "word " * 60
    name = thread_name(question)
    assert len(name) <= THREAD_NAME_LIMIT
    assert name.endswith("word…")


def test_thread_name_one_long_word_cut_hard() -> None:
    name = thread_name("x" * 300)
    assert len(name) == THREAD_NAME_LIMIT
    assert name.endswith("…")


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("patch", "/api/v10/channels/123/messages/456", "PATCH /channels/:id/messages/:id"),
        ("POST", "/api/v10/webhooks/77/secret-token", "POST /webhooks/:id/:token"),
        (
            "PATCH",
            "/api/v10/webhooks/77/secret-token/messages/@original",
            "PATCH /webhooks/:id/:token/messages/@original",
        ),
        (
            "POST",
            "/api/v10/interactions/88/other-token/callback",
            "POST /interactions/:id/:token/callback",
        ),
        ("GET", "/gateway", "GET /gateway"),
        ("GET", "/api/v10/users/@me", "GET /users/@me"),
    ],
)
def test_route_label_has_no_ids_or_tokens(method: str, path: str, label: str) -> None:
    assert route_label(method, path) == label


def test_keys() -> None:
    assert dm_key(5) == ThreadKey("discord", "@dm", "5", "5")
    assert thread_key(1, 2, 3) == ThreadKey("discord", "1", "2", "3")


def test_answer_index_remembers_answers_and_is_bounded() -> None:
    index = AnswerIndex(size=2)
    for n in range(3):
        index.remember(f"a{n}", thread_key("g", "c", f"q{n}"))
    assert index.get("a0") is None  # evicted: the store is asked instead
    assert index.get("a2") == thread_key("g", "c", "q2")
    assert index.get("never-posted") is None


def test_invite_url_lists_exactly_the_needed_permissions() -> None:
    url = invite_url("123456789012345678")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://discord.com/oauth2/authorize?")
    assert query["client_id"] == ["123456789012345678"]
    assert query["scope"] == ["bot applications.commands"]
    # Bits from Discord's permission table (the list in docs/discord.md).
    view_channel, send_messages, read_message_history = 1 << 10, 1 << 11, 1 << 16
    use_application_commands, create_public_threads = 1 << 31, 1 << 35
    send_messages_in_threads = 1 << 38
    assert int(query["permissions"][0]) == (
        view_channel
        | send_messages
        | read_message_history
        | use_application_commands
        | create_public_threads
        | send_messages_in_threads
    )


def test_invite_url_rejects_a_non_id() -> None:
    with pytest.raises(ConfigError, match="digits"):
        invite_url("my-bot")


def test_redirect_gateway_keeps_query_and_leaves_resume_urls() -> None:
    url = "wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream"
    redirected = redirect_gateway(url, "ws://127.0.0.1:9/gateway")
    assert redirected == "ws://127.0.0.1:9/gateway?v=10&encoding=json&compress=zlib-stream"
    resume = "ws://127.0.0.1:9/gateway?v=10"
    assert redirect_gateway(resume, "ws://other:1/") == resume


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (403, 50007, "DMs closed"),
        (403, 50013, "lacks a permission"),
        (404, 10003, "no longer exists"),
        (400, 50035, "HTTP 400"),
    ],
)
def test_describe_failure(status: int, code: int, words: str) -> None:
    assert words in describe_failure(status, code)
