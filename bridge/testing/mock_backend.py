"""A local server that speaks both seed APIs, for tests, `bridge demo` and trying the bridge
without an account.

`POST /api/v1/chat` behaves like Wonderchat (seeds/wonderchat-api.md) and
`POST /api/v1/chat/completions` like the Widget API (seeds/widget-api.md), over real HTTP
and SSE. Each request plays a *scenario*: the next one queued with `enqueue(name)`, else
the one named by a `[mock:name]` marker in the question, else "answer".

Like a real backend it continues only conversations it started: an unknown `chatlogId`
is refused with 404 and an unknown `previous_response_id` with 400 (the shape OpenAI's
Responses API uses, which the Widget API follows), before any scenario is played.
`forget_conversations()` makes every earlier id unknown, as when a backend expires them.
The seed documents name no such error; these are our assumption of the likeliest one.

    async with MockBackend() as mock:
        settings = load_settings(wonderchat_chatbot_id=mock.chatbot_id,
                                 wonderchat_api_url=mock.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Protocol

from aiohttp import web
from multidict import CIMultiDict

from bridge.testing.server import serve_app

WONDERCHAT_PATH = "/api/v1/chat"
WIDGET_PATH = "/api/v1/chat/completions"
DEFAULT_API_KEY = "test-key"
DEFAULT_CHATBOT_ID = "test-bot"
DEFAULT_MODEL_NAME = "mock-1"

SLOW_DELAY_SECONDS = 0.3  # "slow": visibly slow in a demo, still quick enough for a test
STALL_LIMIT_SECONDS = 3600.0  # a stalled request ends by itself eventually, whatever happens
SHUTDOWN_SECONDS = 1.0  # stopping the server waits this long for open (stalled) streams
LONG_ANSWER_WORDS_PER_CHUNK = 25  # the long answer (> 20,000 chars) in a few hundred events

SCENARIOS = frozenset(
    {
        "answer",
        "slow",
        "reason",
        "error",
        "400",
        "401",
        "429",
        "500",
        "stall",
        "silent",
        "premature-close",
        "invalid-json",
        "long",
        "hostile-sources",
        "empty",
        "terse",
        "echo-context",
    }
)
_MARKER = re.compile(r"\[mock:([a-z0-9-]+)\]")

ANSWER_SOURCES = (
    {"url": "https://docs.example.com/getting-started", "title": "Getting started"},
    {"url": "https://docs.example.com/faq#threads", "title": "FAQ: threads and follow-ups"},
    {"url": "https://example.com/blog/streaming-answers", "title": ""},
)
HOSTILE_SOURCES = (
    {"url": "javascript:alert(document.cookie)", "title": "Click me"},
    {"url": "data:text/html,<script>alert(1)</script>", "title": "Totally safe"},
    {"url": "https://docs.example.com/a", "title": "@everyone read this <!channel>"},
    {"url": "https://docs.example.com/a", "title": "The same page again"},
    {
        "url": "https://docs.example.com/b",
        "title": "[evil](https://evil.example) <@U0123ABCD> @here",
    },
    {"url": "https://docs.example.com/c", "title": "<!subteam^S0123|team> <@&123456789012345678>"},
    {"url": "ftp://files.example.com/x", "title": "Old school"},
)
HOSTILE_TEXT = (
    "Heads up @everyone and @here, also <!channel> <!here> <!everyone> <@U0123ABCD> "
    "<@123456789012345678> <@&123456789012345678> <!subteam^S0123|team>: none of these "
    "may ping anybody.\n\nThe sources below are hostile too."
)
UNKNOWN_CHATLOG = {"error": "Chatlog not found"}
TERSE_TEXT = "_No._"
WONDERCHAT_ERROR = "The chatbot is temporarily unavailable"
WIDGET_ERROR = "The model is overloaded, please retry"
ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title>"
    "<style>body { font-family: sans-serif; }</style></head><body>"
    "<h1>Internal Server Error</h1><p>The server encountered an unexpected condition "
    "&amp; could not answer.</p></body></html>"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the mock received it; `json` is None when the body was not JSON."""

    path: str
    headers: Mapping[str, str]
    json: Any
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class _Plan:
    """What one streamed answer does, independent of which API carries it."""

    text: str
    sources: tuple[dict[str, str], ...] = ()
    statuses: tuple[str, ...] = ("Thinking...",)
    words_per_chunk: int = 1
    ending: str = "done"  # done | error | close | stall | silent
    garbage: bool = False  # one event with invalid JSON after the second chunk
    delay: float = 0.0


def answer_text(question: str, turn: int) -> str:
    """The default answer: Markdown that names the question and the conversation turn,
    so tests and demos can see both the echo and the conversation continuing."""
    topic = " ".join(_MARKER.sub("", question).split())[:80] or "your question"
    return (
        f"Here is what I found about **{topic}** (turn {turn} of this conversation).\n\n"
        "This answer is streamed in small pieces, so you can watch it grow while it "
        "arrives; the final version replaces everything streamed before it.\n\n"
        "- Follow-ups in the same thread keep the context\n"
        "- Formatting such as `inline code` and *emphasis* comes through\n\n"
        "Is there anything else I can help you with?"
    )


def long_text(turn: int) -> str:
    """A > 20,000 character answer with paragraphs and code fences, for splitting tests."""
    sections = []
    for n in range(1, 37):
        sections.append(
            f"## Part {n} (turn {turn})\n\n"
            + " ".join(f"Sentence {k} of part {n} explains one more detail." for k in range(8))
            + f"\n\n```python\ndef part_{n}(value: int) -> int:\n"
            + "".join(f"    value = value * {k} + {n}  # step {k}\n" for k in range(1, 6))
            + "    return value\n```\n"
        )
    return "\n".join(sections)


def _chunks(text: str, words_per_chunk: int) -> list[str]:
    """Pieces of `text` at word boundaries that join back to exactly `text`."""
    if not text:
        return []
    words = re.split(r"(?<=\s)(?=\S)", text)
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


def _sse(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()


class MockBackend:
    """Both seed APIs on 127.0.0.1 (port 0 picks a free port); see the module docstring.

    Attributes:
        requests: every request received, in order.
        active_streams: SSE responses still being written (0 once clients hung up).
        retry_after: the `Retry-After` value the "429" scenario sends.
        text_chunks: answer text chunks written so far, every stream together.
        first_chunk_at: question → time.monotonic() once its first text chunk was written
            (the first answer to that question), so a benchmark can tell the latency a
            client adds from the time the backend takes.
    """

    def __init__(
        self,
        delay: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        chatbot_id: str = DEFAULT_CHATBOT_ID,
        retry_after: str = "1",
    ) -> None:
        self.delay = delay
        self.api_key = api_key
        self.chatbot_id = chatbot_id
        self.retry_after = retry_after
        self.requests: list[RecordedRequest] = []
        self.active_streams = 0
        self.text_chunks = 0
        self.first_chunk_at: dict[str, float] = {}
        self._host = host
        self._port = port
        self._queue: deque[str] = deque()
        self._throttled: set[tuple[str, str]] = set()  # (path, question) already given a 429
        self._chatlog_turns: dict[str, int] = {}
        self._response_turns: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._url = ""

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, once started."""
        if not self._url:
            raise RuntimeError("MockBackend is not running; use `async with MockBackend()`")
        return self._url

    def enqueue(self, name: str) -> None:
        """Make the next request (of either API) play scenario `name`."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown mock scenario {name!r}; known: {sorted(SCENARIOS)}")
        self._queue.append(name)

    def forget_conversations(self) -> None:
        """Forget every conversation (as a backend that expired them): their ids are
        refused from now on."""
        self._chatlog_turns.clear()
        self._response_turns.clear()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(WONDERCHAT_PATH, self._wonderchat)
        app.router.add_post(WIDGET_PATH, self._widget)
        # Cancel a handler when its client goes away, so "stall" ends with the request.
        self._runner, port = await serve_app(
            app,
            self._host,
            self._port,
            shutdown_timeout=SHUTDOWN_SECONDS,
            handler_cancellation=True,
            access_log=None,
        )
        self._url = f"http://{self._host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Requests -----------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(
            RecordedRequest(request.path, CIMultiDict(request.headers), body, time.monotonic())
        )
        return body

    def _scenario(self, path: str, question: str) -> str:
        if self._queue:
            return self._queue.popleft()
        match = _MARKER.search(question)
        name = match.group(1) if match and match.group(1) in SCENARIOS else "answer"
        if name == "429":
            # The marker throttles only the first attempt, so a retrying client succeeds.
            if (path, question) in self._throttled:
                return "answer"
            self._throttled.add((path, question))
        return name

    def _plan(self, scenario: str, question: str, turn: int) -> _Plan:
        plan = _Plan(text=answer_text(question, turn), sources=ANSWER_SOURCES, delay=self.delay)
        match scenario:
            case "slow":
                return replace(plan, delay=max(self.delay, SLOW_DELAY_SECONDS))
            case "reason":
                steps = ("Thinking...", "Searching the knowledge base...", "Reading 3 pages...")
                return replace(plan, statuses=steps)
            case "error":
                return replace(plan, ending="error")
            case "stall" | "silent":
                return replace(plan, ending=scenario)
            case "premature-close":
                return replace(plan, ending="close")
            case "invalid-json":
                return replace(plan, garbage=True)
            case "long":
                return replace(
                    plan, text=long_text(turn), words_per_chunk=LONG_ANSWER_WORDS_PER_CHUNK
                )
            case "hostile-sources":
                return replace(plan, text=HOSTILE_TEXT, sources=HOSTILE_SOURCES)
            case "empty":
                return replace(plan, text="", sources=())
            case "terse":  # a whole answer shaped like a status line
                return replace(plan, text=TERSE_TEXT, sources=())
        return plan

    def _refusal(self, scenario: str) -> web.Response | None:
        """The HTTP-level failure a scenario asks for, if any."""
        if scenario == "400":
            return web.json_response({"error": "The question could not be processed"}, status=400)
        if scenario == "401":
            return web.json_response({"error": "Unauthorized"}, status=401)
        if scenario == "429":
            return web.json_response(
                {"error": "Too many requests"},
                status=429,
                headers={"Retry-After": self.retry_after},
            )
        if scenario == "500":
            return web.Response(text=ERROR_PAGE, status=500, content_type="text/html")
        return None

    # Wonderchat ---------------------------------------------------------------------

    async def _wonderchat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if not isinstance(body, dict):
            return web.json_response({"error": "Invalid JSON body"}, status=400)
        question, chatbot_id = body.get("question"), body.get("chatbotId")
        if not isinstance(question, str) or not question or not isinstance(chatbot_id, str):
            return web.json_response({"error": "chatbotId and question are required"}, status=400)
        if chatbot_id != self.chatbot_id:
            return web.json_response({"error": "Chatbot not found"}, status=404)
        chatlog_id = body.get("chatlogId")
        if chatlog_id and (
            not isinstance(chatlog_id, str) or chatlog_id not in self._chatlog_turns
        ):
            return web.json_response(UNKNOWN_CHATLOG, status=404)
        scenario = self._scenario(request.path, question)
        refusal = self._refusal(scenario)
        if refusal is not None:
            return refusal
        if not isinstance(chatlog_id, str) or not chatlog_id:
            chatlog_id = "cl" + secrets.token_hex(12)
        turn = self._chatlog_turns.get(chatlog_id, 0) + 1
        self._chatlog_turns[chatlog_id] = turn
        plan = self._plan(scenario, question, turn)
        if scenario == "echo-context":
            plan = replace(plan, text=_echo(body.get("context")))
        final = {
            "id": "cm" + secrets.token_hex(12),
            "response": plan.text,
            "chatlogId": chatlog_id,
            "sources": list(plan.sources),
        }
        if body.get("stream") is not True:
            if plan.ending in ("stall", "silent"):
                await asyncio.sleep(STALL_LIMIT_SECONDS)
            if plan.ending == "error":
                return web.json_response({"error": WONDERCHAT_ERROR}, status=500)
            return web.json_response(final)
        return await self._play(request, question, plan, _WonderchatFrames(chatlog_id, final))

    # Widget -------------------------------------------------------------------------

    async def _widget(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": {"message": "Invalid API key", "type": "invalid_request_error"}},
                status=401,
            )
        question = _last_user_message(body)
        if question is None:
            return web.json_response(
                {"error": {"message": "messages must end with a user message"}}, status=400
            )
        previous = body.get("previous_response_id")
        if previous and (not isinstance(previous, str) or previous not in self._response_turns):
            return web.json_response(_unknown_response(previous), status=400)
        scenario = self._scenario(request.path, question)
        refusal = self._refusal(scenario)
        if refusal is not None:
            return refusal
        turn = self._response_turns.get(previous, 0) + 1 if isinstance(previous, str) else 1
        response_id = "resp_" + secrets.token_hex(5)
        self._response_turns[response_id] = turn
        plan = self._plan(scenario, question, turn)
        if scenario == "echo-context":
            earlier = [m.get("content") for m in body["messages"][:-1] if isinstance(m, dict)]
            plan = replace(plan, text=_echo("\n".join(str(c) for c in earlier)))
        model = body.get("model") if isinstance(body.get("model"), str) else DEFAULT_MODEL_NAME
        frames = _WidgetFrames(response_id, model, plan.statuses)
        return await self._play(request, question, plan, frames)

    # Streaming ----------------------------------------------------------------------

    async def _play(
        self, request: web.Request, question: str, plan: _Plan, frames: _Frames
    ) -> web.StreamResponse:
        """Stream `plan`, the answer to `question`, in one API's frames; the scenario
        decides how it ends."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.active_streams += 1
        try:
            if plan.ending == "silent":
                await _stall()
            for frame in frames.opening():
                await response.write(frame)
                if plan.ending == "stall":
                    await _stall()
                await _pause(plan.delay)
            pieces = _chunks(plan.text, plan.words_per_chunk)
            for index, piece in enumerate(pieces):
                await _pause(plan.delay)
                await response.write(frames.text(piece))
                self._chunk_written(question)
                if index == 1 and plan.garbage:
                    await response.write(frames.garbage())
                if index == 2 and plan.ending == "error":
                    await response.write(frames.error())
                    return response
                if index == len(pieces) // 2 and plan.ending == "close":
                    # Drop the connection without the chunked encoding's final chunk.
                    if request.transport is not None:
                        request.transport.abort()
                    return response
            await _pause(plan.delay)
            for frame in frames.closing():
                await response.write(frame)
            return response
        finally:
            self.active_streams -= 1

    def _chunk_written(self, question: str) -> None:
        self.text_chunks += 1
        self.first_chunk_at.setdefault(question, time.monotonic())


class _Frames(Protocol):
    """One API's wire format for the parts of a streamed answer."""

    def opening(self) -> list[bytes]: ...
    def text(self, piece: str) -> bytes: ...
    def garbage(self) -> bytes: ...
    def error(self) -> bytes: ...
    def closing(self) -> list[bytes]: ...


@dataclass(frozen=True)
class _WonderchatFrames:
    chatlog_id: str
    final: dict[str, Any]

    def opening(self) -> list[bytes]:
        return [_sse(json.dumps({"chatlogId": self.chatlog_id}), "metadata")]

    def text(self, piece: str) -> bytes:
        return _sse(json.dumps({"delta": piece}), "chunk")

    def garbage(self) -> bytes:
        return _sse('{"delta": "this is not json', "chunk")

    def error(self) -> bytes:
        return _sse(json.dumps({"error": WONDERCHAT_ERROR}), "error")

    def closing(self) -> list[bytes]:
        return [_sse(json.dumps(self.final), "done")]


@dataclass(frozen=True)
class _WidgetFrames:
    response_id: str
    model: str
    statuses: tuple[str, ...]

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """The seed's exact `chat.completion.chunk` shape."""
        payload = {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        return _sse(json.dumps(payload, separators=(",", ":")), "message")

    def opening(self) -> list[bytes]:
        reasons = [self._chunk({"reason": {"text": status}}) for status in self.statuses]
        return [*reasons, self._chunk({})]

    def text(self, piece: str) -> bytes:
        return self._chunk({"content": piece})

    def garbage(self) -> bytes:
        return _sse('{"id": "resp_broken", "choices": [', "message")

    def error(self) -> bytes:
        error = {"error": {"message": WIDGET_ERROR, "type": "server_error"}}
        return _sse(json.dumps(error), "message")

    def closing(self) -> list[bytes]:
        return [self._chunk({}, "stop"), _sse("[DONE]", "message")]


def _unknown_response(response_id: Any) -> dict[str, Any]:
    """The error OpenAI's Responses API sends for an unknown `previous_response_id`."""
    return {
        "error": {
            "message": f"Previous response with id '{response_id}' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }


def _echo(context: Any) -> str:
    """The `echo-context` answer: the earlier messages / context the request carried,
    repeated verbatim (what a careless chatbot might do with other people's text)."""
    shown = context if isinstance(context, str) and context else "(no context)"
    return f"You showed me:\n\n{shown}"


def _last_user_message(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    messages = body["messages"]
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "user":
        content = last.get("content")
        if isinstance(content, str) and content:
            return content
    return None


async def _pause(delay: float) -> None:
    if delay > 0:
        await asyncio.sleep(delay)


async def _stall() -> None:
    """Send nothing more until the client leaves (the handler is then cancelled) or the
    server stops (it cancels handlers after `SHUTDOWN_SECONDS`)."""
    await asyncio.sleep(STALL_LIMIT_SECONDS)


async def serve_forever(host: str = "127.0.0.1", port: int = 8090, delay: float = 0.04) -> int:
    """`bridge mock-backend`: run both mock APIs until Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    async with MockBackend(delay=delay, host=host, port=port) as mock:
        print(
            f"mock backend listening on {mock.url} (Wonderchat {WONDERCHAT_PATH}, "
            f"Widget {WIDGET_PATH})\n\n"
            "Wonderchat:\n"
            f"  export WONDERCHAT_API_URL={mock.url} WONDERCHAT_CHATBOT_ID={mock.chatbot_id}\n"
            "Widget:\n"
            f"  export BRIDGE_BACKEND=widget WIDGET_API_URL={mock.url} "
            f"WIDGET_API_KEY={mock.api_key}\n\n"
            "Put [mock:NAME] in a question to play a scenario: "
            + ", ".join(sorted(SCENARIOS))
            + "\nPress Ctrl-C to stop.",
            flush=True,
        )
        await stop.wait()
    return 0
