"""Behaviour both backend clients share, each run against the mock over real HTTP/SSE."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from backend_helpers import ClientFactory, collect, wait_until

from bridge.backends.events import (
    AnswerDone,
    AnswerFailed,
    ConversationLost,
    ConversationStarted,
    TextDelta,
)
from bridge.testing.mock_backend import MockBackend


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def assert_one_terminal_last(events: list) -> None:
    terminals = [e for e in events if isinstance(e, AnswerDone | AnswerFailed)]
    assert terminals == [events[-1]]


async def test_answer_streams_deltas_that_add_up_to_the_final_text(
    make_client: ClientFactory,
) -> None:
    events = await collect(make_client().stream_answer("How do threads work?"))
    assert_one_terminal_last(events)
    assert isinstance(events[0], ConversationStarted)
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert "How do threads work?" in done.text
    assert "(turn 1 of this conversation)" in done.text
    assert text_of(events) == done.text
    assert sum(isinstance(e, TextDelta) for e in events) > 10  # really streamed in pieces
    assert done.conversation_id == events[0].conversation_id


async def test_second_turn_continues_the_conversation(make_client: ClientFactory) -> None:
    client = make_client()
    first = (await collect(client.stream_answer("first")))[-1]
    assert isinstance(first, AnswerDone) and first.conversation_id
    second = await collect(client.stream_answer("second", first.conversation_id))
    done = second[-1]
    assert isinstance(done, AnswerDone)
    assert "(turn 2 of this conversation)" in done.text
    assert done.conversation_id


async def test_credentials_rejected_is_final_and_not_retried(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    events = await collect(make_client().stream_answer("hi [mock:401]"))
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, AnswerFailed)
    assert "rejected the bridge's credentials" in failed.reason
    assert failed.retryable is False
    assert len(mock.requests) == 1


async def test_429_is_retried_after_retry_after(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    mock.retry_after = "1"
    started = time.monotonic()
    events = await collect(make_client().stream_answer("busy? [mock:429]"))
    assert isinstance(events[-1], AnswerDone)
    assert len(mock.requests) == 2
    assert time.monotonic() - started >= 0.9  # waited as told (a lower bound, not a speed test)


async def test_429_until_retries_run_out_fails_retryable(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    for _ in range(3):
        mock.enqueue("429")
    events = await collect(make_client(bridge_backend_retries=2).stream_answer("hello"))
    assert len(mock.requests) == 3
    failed = events[-1]
    assert isinstance(failed, AnswerFailed)
    assert failed.retryable is True
    assert "busy" in failed.reason
    assert "HTTP 429" in failed.reason


async def test_enqueued_429_fails_only_that_request(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    mock.enqueue("429")
    events = await collect(make_client().stream_answer("hello"))
    assert isinstance(events[-1], AnswerDone)
    assert len(mock.requests) == 2


async def test_500_html_page_is_retried_then_quoted_safely(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    events = await collect(make_client(bridge_backend_retries=1).stream_answer("x [mock:500]"))
    assert len(mock.requests) == 2
    failed = events[-1]
    assert isinstance(failed, AnswerFailed)
    assert failed.retryable is True
    assert "unavailable" in failed.reason
    assert "Internal Server Error" in failed.reason
    assert "<" not in failed.reason and "font-family" not in failed.reason
    assert "&amp;" not in failed.reason


async def test_backend_error_event_keeps_partial_text(make_client: ClientFactory) -> None:
    events = await collect(make_client().stream_answer("x [mock:error]"))
    assert_one_terminal_last(events)
    failed = events[-1]
    assert isinstance(failed, AnswerFailed)
    assert "the backend reported an error" in failed.reason
    assert "unavailable" in failed.reason or "overloaded" in failed.reason
    assert failed.partial_text and failed.partial_text == text_of(events)


async def test_premature_close_fails_retryable_with_partial_text(
    make_client: ClientFactory,
) -> None:
    events = await collect(make_client().stream_answer("x [mock:premature-close]"))
    assert_one_terminal_last(events)
    failed = events[-1]
    assert isinstance(failed, AnswerFailed)
    assert failed.reason == "the answer stopped before it was complete"
    assert failed.retryable is True
    assert failed.partial_text.startswith("Here is what I found")


async def test_stall_hits_the_idle_timeout_and_hangs_up(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    events = await collect(make_client(bridge_idle_timeout=0.5).stream_answer("[mock:stall]"))
    assert_one_terminal_last(events)
    failed = events[-1]
    assert isinstance(failed, AnswerFailed)
    assert "stopped sending the answer for 0.5 seconds" in failed.reason
    assert failed.retryable is True
    await wait_until(lambda: mock.active_streams == 0)


async def test_silent_backend_hits_the_first_event_timeout(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    client = make_client(bridge_first_event_timeout=0.5)
    events = await collect(client.stream_answer("[mock:silent]"))
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, AnswerFailed)
    assert "did not start answering within 0.5 seconds" in failed.reason
    await wait_until(lambda: mock.active_streams == 0)


async def test_invalid_json_event_is_skipped_with_a_warning(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.backends.http"):
        events = await collect(make_client().stream_answer("[mock:invalid-json] hi"))
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert "(turn 1 of this conversation)" in done.text
    assert any("not JSON" in record.getMessage() for record in caplog.records)


async def test_long_answer_arrives_whole(make_client: ClientFactory) -> None:
    events = await collect(make_client().stream_answer("[mock:long]"))
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert len(done.text) > 20_000
    assert done.text.count("```") >= 10
    assert text_of(events) == done.text


async def test_empty_answer_is_done_with_empty_text(make_client: ClientFactory) -> None:
    events = await collect(make_client().stream_answer("[mock:empty]"))
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert done.text == ""
    assert not any(isinstance(e, TextDelta) for e in events)


async def test_aclose_mid_stream_hangs_up(make_client: ClientFactory, mock: MockBackend) -> None:
    stream = make_client().stream_answer("[mock:stall]")
    first = await anext(stream)
    assert isinstance(first, ConversationStarted)
    assert mock.active_streams == 1
    await stream.aclose()  # type: ignore[attr-defined]
    await wait_until(lambda: mock.active_streams == 0)


async def test_cancelling_the_consumer_hangs_up(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    seen: list = []

    async def consume() -> None:
        async for event in make_client().stream_answer("[mock:stall]"):
            seen.append(event)

    task = asyncio.create_task(consume())
    await wait_until(lambda: bool(seen))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: mock.active_streams == 0)


async def test_unreachable_backend_fails_retryable(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    client = make_client(bridge_backend_retries=0)
    await mock.stop()  # the port is now closed: connection refused
    events = await collect(client.stream_answer("anyone there?"))
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, AnswerFailed)
    assert failed.reason == "could not reach the backend, please try again in a minute"
    assert failed.retryable is True


def sent_ids(mock: MockBackend) -> list[object]:
    """The conversation id each request carried (None when it started a new one)."""
    return [
        (r.json or {}).get("chatlogId") or (r.json or {}).get("previous_response_id")
        for r in mock.requests
    ]


async def test_an_unknown_conversation_is_started_over_and_said(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    client = make_client()
    first = (await collect(client.stream_answer("first")))[-1]
    assert isinstance(first, AnswerDone) and first.conversation_id
    mock.forget_conversations()  # the backend expired it

    events = await collect(client.stream_answer("second", first.conversation_id))

    assert isinstance(events[0], ConversationLost)
    assert "HTTP 4" in events[0].detail  # the backend's refusal, for the log
    assert isinstance(events[1], ConversationStarted)
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert "(turn 1 of this conversation)" in done.text
    assert done.conversation_id not in (None, first.conversation_id)
    assert sent_ids(mock) == [None, first.conversation_id, None]


async def test_a_refusal_that_is_not_about_the_conversation_is_shown(
    make_client: ClientFactory, mock: MockBackend
) -> None:
    """Asked again without the id and still refused: the id was not the problem, and
    nothing says the conversation was lost."""
    events = await collect(make_client().stream_answer("hi [mock:400]", "unknown-id"))

    assert sent_ids(mock) == ["unknown-id", None]
    assert not any(isinstance(e, ConversationLost) for e in events)
    [failed] = events
    assert isinstance(failed, AnswerFailed) and "HTTP 400" in failed.reason
    assert "could not be processed" in failed.reason
