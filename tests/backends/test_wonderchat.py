"""Wonderchat client: the request it sends (per seeds/wonderchat-api.md) and its mapping."""

from __future__ import annotations

import aiohttp
from backend_helpers import collect, mock_settings

from bridge.backends import WonderchatClient, build_backend
from bridge.backends.events import (
    AnswerDone,
    AnswerFailed,
    ConversationStarted,
    Source,
    TextDelta,
)
from bridge.backends.http import BackendLimits
from bridge.backends.sse import SSEEvent
from bridge.backends.wonderchat import WonderchatMapper
from bridge.testing.mock_backend import ANSWER_SOURCES, HOSTILE_SOURCES, MockBackend


def client(mock: MockBackend, session: aiohttp.ClientSession, **overrides: object):
    return build_backend(mock_settings(mock, "wonderchat", **overrides), session)


async def test_first_request_matches_the_seed(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    events = await collect(client(mock, session).stream_answer("Hello there!"))
    assert isinstance(events[-1], AnswerDone)
    [request] = mock.requests
    assert request.path == "/api/v1/chat"
    assert request.json == {"chatbotId": "test-bot", "question": "Hello there!", "stream": True}
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Content-Type"].startswith("application/json")
    assert "Authorization" not in request.headers


async def test_done_payload_is_authoritative(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    events = await collect(client(mock, session).stream_answer("sources please"))
    started, done = events[0], events[-1]
    assert isinstance(started, ConversationStarted)
    assert started.conversation_id.startswith("cl")
    assert isinstance(done, AnswerDone)
    assert done.conversation_id == started.conversation_id
    assert done.message_id and done.message_id.startswith("cm")
    assert done.sources == tuple(Source(s["url"], s["title"]) for s in ANSWER_SOURCES)


async def test_continuation_sends_chatlog_id(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    backend = client(mock, session)
    first = (await collect(backend.stream_answer("one")))[-1]
    assert isinstance(first, AnswerDone)
    await collect(backend.stream_answer("two", first.conversation_id))
    assert "chatlogId" not in mock.requests[0].json
    assert mock.requests[1].json["chatlogId"] == first.conversation_id


async def test_context_and_context_url_are_sent(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    backend = client(mock, session, wonderchat_context="Answer briefly.")
    await collect(
        backend.stream_answer(
            "q",
            context="The user is Ana.",
            metadata={"context_url": "https://example.slack.com/archives/C1/p1", "x": 1},
        )
    )
    body = mock.requests[0].json
    assert body["context"] == "Answer briefly.\n\nThe user is Ana."
    assert body["contextUrl"] == "https://example.slack.com/archives/C1/p1"
    assert "x" not in body


async def test_json_mode(mock: MockBackend, session: aiohttp.ClientSession) -> None:
    backend = WonderchatClient(session, api_url=mock.url, chatbot_id=mock.chatbot_id, stream=False)
    events = await collect(backend.stream_answer("json please"))
    assert [type(e) for e in events] == [ConversationStarted, AnswerDone]
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert "json please" in done.text
    assert len(done.sources) == 3
    assert mock.requests[0].json["stream"] is False
    assert mock.requests[0].headers["Accept"] == "application/json"


async def test_json_mode_error_status(mock: MockBackend, session: aiohttp.ClientSession) -> None:
    backend = WonderchatClient(
        session,
        api_url=mock.url,
        chatbot_id=mock.chatbot_id,
        stream=False,
        limits=BackendLimits(retries=0),
    )
    [failed] = await collect(backend.stream_answer("[mock:error]"))
    assert isinstance(failed, AnswerFailed)
    assert "The chatbot is temporarily unavailable" in failed.reason


async def test_unknown_chatbot_is_refused_with_the_backends_message(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    backend = client(mock, session, wonderchat_chatbot_id="nope")
    [failed] = await collect(backend.stream_answer("hi"))
    assert isinstance(failed, AnswerFailed)
    assert failed.reason == "the backend refused the question (HTTP 404: Chatbot not found)"
    assert failed.retryable is False
    assert len(mock.requests) == 1


async def test_hostile_sources_pass_through_for_the_renderer_to_filter(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    done = (await collect(client(mock, session).stream_answer("[mock:hostile-sources]")))[-1]
    assert isinstance(done, AnswerDone)
    assert [s.url for s in done.sources] == [s["url"] for s in HOSTILE_SOURCES]
    assert "@everyone" in done.text


def test_mapper_ignores_unknown_events_and_odd_payloads() -> None:
    mapper = WonderchatMapper()
    assert mapper.on_event(SSEEvent("ping", "{}")) == []
    assert mapper.on_event(SSEEvent("chunk", '"just a string"')) == []
    assert mapper.on_event(SSEEvent("chunk", '{"delta": 5}')) == []
    assert mapper.on_event(SSEEvent("chunk", '{"delta": "hi"}')) == [TextDelta("hi")]
    done = mapper.on_event(SSEEvent("done", '{"sources": [{"url": 3}, {"title": "x"}]}'))
    assert done == [AnswerDone(text="hi")]  # no response: the streamed text is kept


def test_mapper_reports_a_changed_chatlog_id_in_done() -> None:
    mapper = WonderchatMapper()
    assert mapper.on_event(SSEEvent("metadata", '{"chatlogId": "a"}')) == [ConversationStarted("a")]
    events = mapper.on_event(SSEEvent("done", '{"response": "ok", "chatlogId": "b"}'))
    assert events == [ConversationStarted("b"), AnswerDone(text="ok", conversation_id="b")]


def test_error_event_message_is_shortened_and_untagged() -> None:
    mapper = WonderchatMapper()
    payload = '{"error": "<b>Boom</b> ' + "x" * 500 + '"}'
    [failed] = mapper.on_event(SSEEvent("error", payload))
    assert isinstance(failed, AnswerFailed)
    assert failed.reason.startswith("the backend reported an error: Boom x")
    assert len(failed.reason) < 200
    assert "<b>" not in failed.reason
