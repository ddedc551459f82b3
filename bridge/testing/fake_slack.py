"""A fake Slack on 127.0.0.1: the Web API methods the bridge calls, plus Socket Mode.

Real slack_sdk / slack-bolt clients talk to it over real HTTP and websockets. It records
every call (method, params, headers, time), keeps message state (ts → text) so tests
assert what a person would see, and can misbehave on request: no streaming API
(`unknown_method`), streaming refused with a chosen error, or a 429 with Retry-After on the
Nth call of a method.

Given `tiers` (method → calls per minute), it also enforces Slack's per-method rate tiers
the way Slack does: a call beyond its method's limit within a sliding window of `minute`
seconds gets a 429 with Retry-After (when the oldest counted call leaves the window). A
shorter `minute` runs Slack time faster, for benchmarks.

Like Slack, it refuses a call that lacks a required parameter, with the error code Slack
uses (`REQUIRED_PARAMS`), so a wrong call fails in tests instead of in production.

    async with FakeSlack() as slack:
        settings = load_settings(slack_bot_token=slack.bot_token, slack_api_url=slack.api_url)
        envelope = await slack.send_event(slack.event_body({...}))
        await slack.wait_for_ack(envelope)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from bridge.testing.server import serve_app

# Slack's `markdown` block and streaming `markdown_text` limit.
MARKDOWN_LIMIT = 12_000
# Slack's documented required parameters per method, and the error a missing one gets.
# chat.startStream additionally needs recipient_team_id / recipient_user_id in channels.
REQUIRED_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "chat.postMessage": (("channel", "channel_not_found"),),
    "chat.update": (("channel", "channel_not_found"), ("ts", "message_not_found")),
    "chat.startStream": (("channel", "channel_not_found"), ("thread_ts", "invalid_arguments")),
    "chat.appendStream": (
        ("channel", "channel_not_found"),
        ("ts", "message_not_found"),
        ("markdown_text", "invalid_arguments"),
    ),
    "chat.stopStream": (("channel", "channel_not_found"), ("ts", "message_not_found")),
    "assistant.threads.setStatus": (
        ("channel_id", "invalid_arguments"),
        ("thread_ts", "invalid_arguments"),
        ("status", "invalid_arguments"),
    ),
    "assistant.threads.setSuggestedPrompts": (
        ("channel_id", "invalid_arguments"),
        ("prompts", "invalid_arguments"),
    ),
}
# Parameters that may be present but empty (an empty status clears it).
MAY_BE_EMPTY = frozenset({"status"})
MAX_SUGGESTED_PROMPTS = 4
# How long helpers wait for a condition before failing the test.
DEFAULT_WAIT_SECONDS = 15.0
RECHECK_SECONDS = 0.05


@dataclass(frozen=True)
class SlackCall:
    """One Web API request as the fake received it."""

    method: str
    params: dict[str, Any]
    headers: Mapping[str, str]
    at: float  # time.monotonic() on arrival


@dataclass
class FakeMessage:
    """A message's current state; `history` holds every text it has shown, in order."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    streaming: bool = False
    unfurl_links: bool | None = None
    history: list[str] = field(default_factory=list)

    def show(self, text: str) -> None:
        self.text = text
        self.history.append(text)


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with an HTTP event: `v0=` HMAC-SHA256 of `v0:{ts}:{body}`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/json",
    }


class _Refusal(Exception):
    def __init__(
        self,
        error: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        *,
        detail: str = "",
    ):
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.detail:
            body["response_metadata"] = {"messages": [f"[ERROR] {self.detail}"]}
        return body


def _check_required(method: str, params: dict[str, Any]) -> None:
    for name, error in REQUIRED_PARAMS.get(method, ()):
        value = params.get(name)
        if value is None or (value == "" and name not in MAY_BE_EMPTY):
            raise _Refusal(error, detail=f"missing required field: {name}")


class FakeSlack:
    """The fake server; use as an async context manager."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        team_id: str = "T0FAKE",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        tiers: Mapping[str, int] | None = None,
        minute: float = 60.0,
    ) -> None:
        """
        Args:
            tiers: calls per `minute` allowed per method (e.g. `{"chat.update": 50}`);
                methods not listed, and every method when None, are never limited.
            minute: the sliding window's length in seconds.
        """
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.streaming_supported = True
        # When set, chat.startStream is refused with this error (e.g. channel_type_not_supported).
        self.stream_start_error: str | None = None
        self.calls: list[SlackCall] = []
        self.refused: list[tuple[str, str]] = []  # (method, error) of every refused call
        self.messages: dict[str, FakeMessage] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self._rate_limits: dict[str, tuple[int, float]] = {}
        self._counts: dict[str, int] = {}
        self._tiers = dict(tiers or {})
        self._minute = minute
        self._recent: dict[str, deque[float]] = {method: deque() for method in self._tiers}
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._changed = asyncio.Event()

    # Lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/link/", self._socket_mode)
        self._runner, self.port = await serve_app(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL should be (the trailing slash matters to slack_sdk)."""
        return f"{self.url}/api/"

    # Behaviour switches ----------------------------------------------------------------

    def rate_limit(self, method: str, *, nth: int, retry_after: float = 1.0) -> None:
        """Answer the `nth` call (1-based, counted from now on) of `method` with a 429."""
        self._rate_limits[method] = (self._counts.get(method, 0) + nth, retry_after)

    # Inspection ------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    def replies(self, channel: str, thread_ts: str | None) -> list[FakeMessage]:
        """Bot messages in a thread (or at the top level when `thread_ts` is None)."""
        return [
            m for m in self.messages.values() if m.channel == channel and m.thread_ts == thread_ts
        ]

    async def wait_until(
        self, condition: Callable[[], bool], *, within: float = DEFAULT_WAIT_SECONDS
    ) -> None:
        """Wait until `condition()` holds; raise TimeoutError after `within` seconds.

        It is re-checked after every call, connection and ack the fake sees, and every
        `RECHECK_SECONDS` for conditions on other state (the relay, the backend).
        """
        async with asyncio.timeout(within):
            while not condition():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_SECONDS):
                        await self._changed.wait()

    def _notify(self) -> None:
        """Wake every `wait_until`: a fresh event per change broadcasts to all waiters."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # Events ----------------------------------------------------------------------------

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """Wrap an event the way the Events API does (`event_callback`)."""
        return {
            "token": "verification-token-unused",
            "team_id": self.team_id,
            "api_app_id": "AFAKE",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True}
            ],
        }

    async def send_event(
        self, payload: dict[str, Any], *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Deliver an Events API payload over the newest Socket Mode connection."""
        await self.wait_until(lambda: bool(self._sockets))
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        await self._sockets[-1].send_str(json.dumps(envelope))
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, *, within: float = DEFAULT_WAIT_SECONDS) -> None:
        await self.wait_until(lambda: envelope_id in self.acks, within=within)

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.append(socket)
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "connection_info": {"app_id": "AFAKE"},
            "debug_info": {"host": "fake-slack"},
        }
        await socket.send_str(json.dumps(hello))
        self._notify()
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                if "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
                    self._notify()
        finally:
            self._sockets.remove(socket)
        return socket

    # Web API ---------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.body_exists:
            params.update(await request.post())
        self.calls.append(SlackCall(method, params, dict(request.headers), time.monotonic()))
        self._counts[method] = self._counts.get(method, 0) + 1
        try:
            self._check_rate_limit(method)
            self._check_tier(method)
            self._check_token(method, request, params)
            handler = self._METHODS.get(method)
            if handler is None:
                raise _Refusal("unknown_method")
            _check_required(method, params)
            result = handler(self, params)
        except _Refusal as refusal:
            self.refused.append((method, refusal.error))
            return web.json_response(refusal.body(), status=refusal.status, headers=refusal.headers)
        finally:
            self._notify()
        return web.json_response({"ok": True, **result})

    def _check_rate_limit(self, method: str) -> None:
        limit = self._rate_limits.get(method)
        if limit is not None and self._counts[method] == limit[0]:
            del self._rate_limits[method]
            raise _Refusal("ratelimited", 429, {"Retry-After": str(limit[1])})

    def _check_tier(self, method: str) -> None:
        """Refuse a call over its method's tier in the sliding window; count it otherwise."""
        recent = self._recent.get(method)
        if recent is None:
            return
        now = time.monotonic()
        while recent and recent[0] <= now - self._minute:
            recent.popleft()
        if len(recent) >= self._tiers[method]:
            # Rounded up, so a client that waits exactly this long gets through.
            retry_after = math.ceil((recent[0] + self._minute - now) * 1000) / 1000
            raise _Refusal("ratelimited", 429, {"Retry-After": f"{retry_after:.3f}"})
        recent.append(now)

    def _check_token(self, method: str, request: web.Request, params: dict[str, Any]) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() or str(params.get("token", ""))
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token == wanted:
            return
        if token in (self.app_token, self.bot_token):
            raise _Refusal("not_allowed_token_type")
        raise _Refusal("not_authed" if not token else "invalid_auth")

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1_700_000_000 + n}.{n:06d}"

    def _message(self, params: dict[str, Any]) -> FakeMessage:
        message = self.messages.get(str(params.get("ts", "")))
        if message is None or message.channel != params.get("channel"):
            raise _Refusal("message_not_found")
        return message

    @staticmethod
    def _visible_text(params: dict[str, Any]) -> str:
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks:
            texts = [b.get("text", "") for b in blocks if b.get("type") == "markdown"]
            if sum(len(t) for t in texts) > MARKDOWN_LIMIT:
                raise _Refusal("invalid_blocks")
            return "".join(texts)
        text = str(params.get("text", ""))
        if not text:
            raise _Refusal("no_text")
        return text

    @staticmethod
    def _markdown_text(params: dict[str, Any]) -> str:
        text = str(params.get("markdown_text") or "")
        if len(text) > MARKDOWN_LIMIT:
            raise _Refusal("msg_too_long")
        return text

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "bridge",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}"}

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        message = FakeMessage(
            channel=str(params["channel"]),
            ts=self._next_ts(),
            thread_ts=params.get("thread_ts") or None,
            text="",
            unfurl_links=params.get("unfurl_links"),
        )
        message.show(self._visible_text(params))
        self.messages[message.ts] = message
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        if message.streaming:
            raise _Refusal("streaming_state_conflict")
        message.show(self._visible_text(params))
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _start_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming_supported:
            raise _Refusal("unknown_method")
        if self.stream_start_error:
            raise _Refusal(self.stream_start_error)
        channel = str(params["channel"])
        if channel.startswith(("C", "G")):  # outside DMs Slack needs the recipient
            for name in ("recipient_team_id", "recipient_user_id"):
                if not params.get(name):
                    raise _Refusal(f"missing_{name}")
        message = FakeMessage(
            channel=channel,
            ts=self._next_ts(),
            thread_ts=str(params["thread_ts"]),
            text="",
            streaming=True,
        )
        message.show(self._markdown_text(params))
        self.messages[message.ts] = message
        return {"channel": channel, "ts": message.ts}

    def _append_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming_supported:
            raise _Refusal("unknown_method")
        message = self._message(params)
        if not message.streaming:
            raise _Refusal("message_not_in_streaming_state")
        message.show(message.text + self._markdown_text(params))
        return {"channel": message.channel, "ts": message.ts}

    def _stop_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming_supported:
            raise _Refusal("unknown_method")
        message = self._message(params)
        if not message.streaming:
            raise _Refusal("message_not_in_streaming_state")
        message.streaming = False
        message.show(message.text + self._markdown_text(params))
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _accept(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _suggested_prompts(self, params: dict[str, Any]) -> dict[str, Any]:
        prompts = params["prompts"]
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        complete = all(p.get("title") and p.get("message") for p in prompts)
        if not prompts or len(prompts) > MAX_SUGGESTED_PROMPTS or not complete:
            raise _Refusal("invalid_arguments", detail="prompts: 1 to 4 with title and message")
        return {}

    _METHODS: ClassVar[dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]]] = {
        "auth.test": _auth_test,
        "apps.connections.open": _connections_open,
        "chat.postMessage": _post_message,
        "chat.update": _update,
        "chat.startStream": _start_stream,
        "chat.appendStream": _append_stream,
        "chat.stopStream": _stop_stream,
        "assistant.threads.setStatus": _accept,
        "assistant.threads.setSuggestedPrompts": _suggested_prompts,
    }
