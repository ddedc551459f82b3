"""Shared plumbing: status mapping, Retry-After, safe excerpts, odd replies from a fake
server that misbehaves in ways the mock backend does not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from backend_helpers import collect
from prometheus_client import REGISTRY

from bridge.backends import WidgetClient, WonderchatClient
from bridge.backends.events import AnswerDone, AnswerFailed
from bridge.backends.http import (
    RETRY_AFTER_CAP_SECONDS,
    BackendBusy,
    BackendLimits,
    BackendRejected,
    BackendRequest,
    BackendUnavailable,
    error_for_status,
    parse_retry_after,
    safe_excerpt,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECRET = "sk-live-abcdef123456"
LIMITS = BackendLimits(connect=5, first_event=5, idle=5, retries=1)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a one-route fake backend (both API paths) and return its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/api/v1/chat", handler)
        app.router.add_post("/api/v1/chat/completions", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def widget(session: aiohttp.ClientSession, url: str) -> WidgetClient:
    return WidgetClient(session, api_url=url, api_key=SECRET, limits=LIMITS)


# Pure functions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, BackendRejected, False),
        (403, BackendRejected, False),
        (429, BackendBusy, True),
        (500, BackendUnavailable, True),
        (503, BackendUnavailable, True),
    ],
)
def test_error_for_status(status: int, kind: type, retryable: bool) -> None:
    error = error_for_status(status, "detail")
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.user_message.endswith(f"(HTTP {status}: detail)")


def test_client_errors_are_not_retried() -> None:
    error = error_for_status(404)
    assert not isinstance(error, BackendUnavailable)
    assert error.user_message == "the backend refused the question (HTTP 404)"


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("86400") == RETRY_AFTER_CAP_SECONDS
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7)), now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7)), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


def test_safe_excerpt() -> None:
    page = "<html><head><title>T</title></head><script>x()</script><p>Bad &amp;\n\n gateway</p>"
    assert safe_excerpt(page) == "Bad & gateway"
    assert safe_excerpt(f"key {SECRET} and Bearer abc.def", secrets=[SECRET]) == (
        "key *** and Bearer ***"
    )
    long = safe_excerpt("word " * 100)
    assert len(long) == 120 and long.endswith("…")


def test_request_repr_hides_the_key() -> None:
    request = BackendRequest(
        url="http://x", body={}, headers={"Authorization": f"Bearer {SECRET}"}, secrets=(SECRET,)
    )
    assert SECRET not in repr(request)


# Odd replies over HTTP ---------------------------------------------------------------------


async def test_html_page_with_200_is_not_an_answer(serve, session) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body><h1>Welcome to our site</h1></body></html>", content_type="text/html"
        )

    [failed] = await collect(widget(session, await serve(handler)).stream_answer("hi"))
    assert isinstance(failed, AnswerFailed)
    assert failed.reason == (
        "the backend replied with something that is not a chat answer (text/html): "
        "Welcome to our site"
    )
    assert failed.retryable is False


async def test_error_body_echoing_the_key_is_redacted(serve, session) -> None:
    async def handler(request: web.Request) -> web.Response:
        echoed = request.headers["Authorization"]
        return web.json_response({"error": {"message": f"bad model for {echoed}"}}, status=400)

    [failed] = await collect(widget(session, await serve(handler)).stream_answer("hi"))
    assert isinstance(failed, AnswerFailed)
    assert SECRET not in failed.reason
    assert failed.reason == "the backend refused the question (HTTP 400: bad model for Bearer ***)"


async def test_oversized_event_fails_the_answer(serve, session) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"id":"resp_1","choices":[{"delta":{"content":"')
        for _ in range(20):
            await response.write(b"x" * 65536)
        return response

    [failed] = await collect(widget(session, await serve(handler)).stream_answer("hi"))
    assert isinstance(failed, AnswerFailed)
    assert failed.reason == "the backend sent an answer too large to read"


async def test_retry_after_as_http_date(serve, session) -> None:
    calls: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 1:
            past = format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
            return web.Response(status=503, text="down", headers={"Retry-After": past})
        return web.json_response({"id": "m", "response": "ok", "chatlogId": "c", "sources": []})

    client = WonderchatClient(
        session, api_url=await serve(handler), chatbot_id="b", limits=LIMITS, stream=False
    )
    events = await collect(client.stream_answer("hi"))
    assert events[-1] == AnswerDone(text="ok", message_id="m", conversation_id="c")
    assert len(calls) == 2


async def test_clean_end_without_done_keeps_partial_text_and_counts_metrics(serve, session) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: chunk\ndata: {"delta": "Half an answer"}\n\n')
        return response

    def count() -> float:
        labels = {"backend": "wonderchat"}
        return REGISTRY.get_sample_value("bridge_backend_total_seconds_count", labels) or 0.0

    before = count()
    client = WonderchatClient(session, api_url=await serve(handler), chatbot_id="b", limits=LIMITS)
    events = await collect(client.stream_answer("hi"))
    assert events[-1] == AnswerFailed(
        "the answer stopped before it was complete", retryable=True, partial_text="Half an answer"
    )
    assert count() == before + 1
