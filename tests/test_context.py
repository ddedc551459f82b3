"""The cap and the two backend forms of a thread's earlier messages, and the rule that a
failed fetch costs the context, never the answer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.context import (
    CONTEXT_MAX_CHARS,
    CONTEXT_MAX_MESSAGES,
    CONTEXT_MESSAGE_CHARS,
    ContextMessage,
    QuestionContext,
    as_chat_messages,
    as_text,
    cap,
    load_context,
    with_files,
)
from bridge.errors import PlatformError


def numbered(count: int) -> list[ContextMessage]:
    return [ContextMessage(f"user{n % 3}", f"message {n}") for n in range(count)]


def test_cap_keeps_the_newest_messages_oldest_first() -> None:
    kept = cap(numbered(30))
    assert len(kept) == CONTEXT_MAX_MESSAGES
    assert [m.text for m in kept] == [f"message {n}" for n in range(10, 30)]


def test_cap_counts_characters_and_cuts_one_long_message() -> None:
    long = ContextMessage("ana", "x" * (CONTEXT_MESSAGE_CHARS * 3))
    kept = cap([*numbered(3), long])
    assert len(kept[-1].text) == CONTEXT_MESSAGE_CHARS and kept[-1].text.endswith("…")
    many_long = [ContextMessage("ana", "y" * CONTEXT_MESSAGE_CHARS) for _ in range(10)]
    assert sum(len(m.text) for m in cap(many_long)) <= CONTEXT_MAX_CHARS


def test_cap_drops_empty_messages() -> None:
    kept = cap([ContextMessage("a", "  "), ContextMessage("b", "hi")])
    assert kept == (ContextMessage("b", "hi"),)


def test_wonderchat_text_marks_authors_and_the_assistant() -> None:
    text = as_text([ContextMessage("ana", "Is it down?"), ContextMessage("", "No.", True)])
    assert text.splitlines()[0].startswith("Earlier messages")
    assert "ana: Is it down?" in text and "assistant: No." in text
    assert as_text([]) == ""


def test_widget_messages_are_user_and_assistant_turns() -> None:
    turns = as_chat_messages(
        [ContextMessage("ana", "Is it down?"), ContextMessage("", "No.", True)]
    )
    assert turns == [
        {"role": "user", "content": "ana: Is it down?"},
        {"role": "assistant", "content": "No."},
    ]


def test_files_are_noted_by_name() -> None:
    assert with_files("see this", ["log.txt", ""]) == "see this [file: log.txt] [file: unnamed]"


async def test_context_is_loaded_on_the_first_turn_only() -> None:
    calls = 0

    async def load() -> list[ContextMessage]:
        nonlocal calls
        calls += 1
        return numbered(2)

    assert len(await load_context(QuestionContext(load), first_turn=True)) == 2
    assert await load_context(QuestionContext(load), first_turn=False) == ()
    assert calls == 1
    assert len(await load_context(QuestionContext(load, every_turn=True), first_turn=False)) == 2
    assert await load_context(None, first_turn=True) == ()


async def test_a_failed_fetch_is_logged_and_costs_only_the_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refused() -> list[ContextMessage]:
        raise PlatformError("Slack conversations.replies failed: missing_scope")

    async def stalled() -> list[ContextMessage]:
        await asyncio.Event().wait()
        return []

    with caplog.at_level(logging.WARNING, logger="bridge.context"):
        assert await load_context(QuestionContext(refused), first_turn=True) == ()
        assert await load_context(QuestionContext(stalled), first_turn=True, patience=0.01) == ()
    assert "missing_scope" in caplog.text
    assert "did not answer" in caplog.text
