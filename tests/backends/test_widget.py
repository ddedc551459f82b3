"""Widget client: the request it sends (per seeds/widget-api.md) and its chunk mapping."""

from __future__ import annotations

import json

import aiohttp
from backend_helpers import collect, mock_settings

from bridge.backends import build_backend
from bridge.backends.events import (
    ActionsProposed,
    AnswerDone,
    AnswerFailed,
    ConversationStarted,
    Source,
    SourcesFound,
    StatusUpdate,
    TextDelta,
)
from bridge.backends.sse import SSEEvent
from bridge.backends.widget import WidgetMapper
from bridge.testing.mock_backend import MockBackend


def client(mock: MockBackend, session: aiohttp.ClientSession, **overrides: object):
    return build_backend(mock_settings(mock, "widget", **overrides), session)


def chunk(delta: dict, finish_reason: str | None = None, rid: str = "resp_1") -> SSEEvent:
    payload = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": 1753350448,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return SSEEvent("message", json.dumps(payload))


async def test_first_request_matches_the_seed(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    backend = client(mock, session, widget_model="sstrader-2")
    events = await collect(backend.stream_answer("Who won?", metadata={"platform": "slack"}))
    assert isinstance(events[-1], AnswerDone)
    [request] = mock.requests
    assert request.path == "/api/v1/chat/completions"
    assert request.json == {
        "model": "sstrader-2",
        "messages": [{"role": "user", "content": "Who won?"}],
        "previous_response_id": None,
        "stream": True,
        "metadata": {"platform": "slack"},
    }
    assert request.headers["Authorization"] == "Bearer test-key"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Content-Type"].startswith("application/json")


async def test_metadata_defaults_to_empty_and_context_travels_in_it(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    backend = client(mock, session)
    await collect(backend.stream_answer("a"))
    await collect(backend.stream_answer("b", context="The user is Ana."))
    assert mock.requests[0].json["metadata"] == {}
    assert mock.requests[1].json["metadata"] == {"context": "The user is Ana."}


async def test_status_then_text_then_done(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    events = await collect(client(mock, session).stream_answer("[mock:reason] hi"))
    statuses = [e.text for e in events if isinstance(e, StatusUpdate)]
    assert statuses == ["Thinking...", "Searching the knowledge base...", "Reading 3 pages..."]
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    last_status = max(i for i, e in enumerate(events) if isinstance(e, StatusUpdate))
    assert last_status < first_text
    started = events[0]
    assert isinstance(started, ConversationStarted) and started.conversation_id.startswith("resp_")
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert done.conversation_id == started.conversation_id


async def test_follow_up_sends_previous_response_id_and_gets_a_new_one(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    backend = client(mock, session)
    first = (await collect(backend.stream_answer("one")))[-1]
    assert isinstance(first, AnswerDone) and first.conversation_id
    events = await collect(backend.stream_answer("two", first.conversation_id))
    assert mock.requests[1].json["previous_response_id"] == first.conversation_id
    assert mock.requests[1].json["messages"] == [{"role": "user", "content": "two"}]
    second = events[-1]
    assert isinstance(second, AnswerDone)
    assert "(turn 2 of this conversation)" in second.text
    assert second.conversation_id != first.conversation_id
    assert ConversationStarted(second.conversation_id) in events


async def test_wrong_key_is_rejected_and_never_quoted(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    secret = "sk-very-secret-key-123"
    backend = client(mock, session, widget_api_key=secret)
    [failed] = await collect(backend.stream_answer("hi"))
    assert isinstance(failed, AnswerFailed)
    assert (
        failed.reason == "the backend rejected the bridge's credentials (HTTP 401: Invalid API key)"
    )
    assert secret not in repr(failed)
    assert mock.requests[0].headers["Authorization"] == f"Bearer {secret}"
    assert len(mock.requests) == 1


def test_mapper_finish_reasons() -> None:
    mapper = WidgetMapper()
    assert mapper.on_event(chunk({"content": "Hel"})) == [
        ConversationStarted("resp_1"),
        TextDelta("Hel"),
    ]
    [cut] = mapper.on_event(chunk({"content": "lo"}, "length"))[1:]
    assert cut == AnswerFailed(
        "the answer was cut off by the backend's length limit", partial_text="Hello"
    )
    [filtered] = WidgetMapper().on_event(chunk({}, "content_filter"))[1:]
    assert isinstance(filtered, AnswerFailed) and "content filter" in filtered.reason
    [odd] = WidgetMapper().on_event(chunk({}, "<b>tool_calls</b>"))[1:]
    assert isinstance(odd, AnswerFailed) and odd.reason.endswith("(tool_calls)")


def test_mapper_stop_and_done_sentinel() -> None:
    mapper = WidgetMapper()
    mapper.on_event(chunk({"content": "Hi"}))
    assert mapper.on_event(chunk({}, "stop")) == [
        AnswerDone(text="Hi", message_id="resp_1", conversation_id="resp_1")
    ]
    sentinel_only = WidgetMapper()
    sentinel_only.on_event(chunk({"content": "Yo"}))
    assert sentinel_only.on_event(SSEEvent("message", "[DONE]")) == [
        AnswerDone(text="Yo", message_id="resp_1", conversation_id="resp_1")
    ]


def test_mapper_actions_reason_and_changed_id() -> None:
    mapper = WidgetMapper()
    events = mapper.on_event(chunk({"reason": {"text": "Thinking..."}, "actions": [{"a": 1}]}))
    assert events == [
        ConversationStarted("resp_1"),
        StatusUpdate("Thinking..."),
        ActionsProposed(({"a": 1},)),
    ]
    assert mapper.on_event(chunk({}, rid="resp_1")) == []
    assert mapper.on_event(chunk({}, rid="resp_2")) == [ConversationStarted("resp_2")]
    assert mapper.on_event(SSEEvent("other", "{}")) == []


def test_mapper_accepts_sources_the_seed_does_not_define() -> None:
    mapper = WidgetMapper()
    cited = {"sources": [{"url": "https://docs.example.com/a", "title": "A"}]}
    assert SourcesFound((Source("https://docs.example.com/a", "A"),)) in mapper.on_event(
        chunk(cited)
    )
    *_, done = mapper.on_event(chunk({"content": "Hi"}, "stop"))
    assert isinstance(done, AnswerDone) and done.sources == (
        Source("https://docs.example.com/a", "A"),
    )


def test_mapper_error_objects() -> None:
    [failed] = WidgetMapper().on_event(SSEEvent("message", '{"error": {"message": "Nope"}}'))
    assert failed == AnswerFailed("the backend reported an error: Nope", retryable=True)
    [plain] = WidgetMapper().on_event(SSEEvent("error", '{"error": "Bad"}'))
    assert isinstance(plain, AnswerFailed) and plain.reason.endswith(": Bad")


def test_mapper_non_streamed_completion() -> None:
    payload = {"id": "resp_9", "choices": [{"message": {"role": "assistant", "content": "Hi"}}]}
    assert WidgetMapper().on_json(payload) == [
        ConversationStarted("resp_9"),
        TextDelta("Hi"),
        AnswerDone(text="Hi", message_id="resp_9", conversation_id="resp_9"),
    ]


def test_end_without_finish_reason_is_incomplete() -> None:
    mapper = WidgetMapper()
    mapper.on_event(chunk({"content": "Half"}))
    assert mapper.on_end() == AnswerFailed(
        "the answer stopped before it was complete", retryable=True, partial_text="Half"
    )
