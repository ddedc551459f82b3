"""A fake Slack on 127.0.0.1: the Web API methods the bridge calls, plus Socket Mode.

Real slack_sdk / slack-bolt clients talk to it over real HTTP and websockets. It records
every call (method, params, headers, time), keeps message state (ts → text) so tests
assert what a person would see, and can misbehave on request: no streaming API
(`unknown_method`), streaming refused with a chosen error, or a 429 with Retry-After on the
Nth call of a method.

It enforces Slack's rate limits by default (`bridge.testing.slack_limits`): per-method
tiers (a call beyond its method's limit within a sliding minute gets a 429 with
Retry-After, when the oldest counted call leaves the window), chat.postMessage about once
a second per channel, and native streams that Slack ends after about 5 minutes. `speed`
runs Slack time faster, for tests and benchmarks; `limits=None` turns enforcement off.

Like Slack, it refuses a call that lacks a required parameter, with the error code Slack
uses (`REQUIRED_PARAMS`), so a wrong call fails in tests instead of in production. It
also refuses, by default, what Slack refuses (see "Strictness" below and tests/README.md):
channels it does not know, a token sent inside a JSON body, oversized blocks; it cuts
`text` at Slack's 40,000 characters; its `Retry-After` is whole seconds; and Socket Mode
envelopes not acknowledged within 3 s are re-delivered (`slack_socket_mode.py`).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import BasicAuth, WSMsgType, web

from bridge.testing.server import serve_app
from bridge.testing.slack_interactivity import SlackInteractivity
from bridge.testing.slack_limits import SlackLimits
from bridge.testing.slack_socket_mode import (
    ACK_TIMEOUT_SECONDS,
    RETRY_DELAYS_SECONDS,
    Delivery,
    EnvelopeDelivery,
)

# Slack's `markdown` block and streaming `markdown_text` limit.
MARKDOWN_LIMIT = 12_000
# Slack's documented required parameters per method, and the error a missing one gets.
# chat.startStream additionally needs recipient_team_id / recipient_user_id in channels.
REQUIRED_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "chat.postMessage": (("channel", "channel_not_found"),),
    "chat.update": (("channel", "channel_not_found"), ("ts", "message_not_found")),
    "chat.delete": (("channel", "channel_not_found"), ("ts", "message_not_found")),
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
    "conversations.replies": (("channel", "channel_not_found"), ("ts", "thread_not_found")),
    "views.open": (("trigger_id", "invalid_arguments"), ("view", "invalid_arguments")),
    "chat.postEphemeral": (("channel", "channel_not_found"), ("user", "user_not_in_channel")),
}
# Parameters that may be present but empty (an empty status clears it).
MAY_BE_EMPTY = frozenset({"status"})
MAX_SUGGESTED_PROMPTS = 4
# Strictness: what Slack refuses or changes, with the limits it documents
# (../shared/PLATFORM-NOTES.md "Text limits"; api.slack.com/methods/chat.postMessage).
TEXT_LIMIT = 40_000  # Slack truncates `text` beyond this
SECTION_TEXT_LIMIT = 3_000  # a section block's text
MAX_BLOCKS = 50  # blocks per message
# Channels a fresh fake knows; every channel an event is delivered from is added.
DEFAULT_CHANNELS = ("C1", "D1")
# Methods whose `channel` (or `channel_id`) must be a channel the workspace has.
CHANNEL_PARAM = {
    "chat.postMessage": "channel",
    "chat.update": "channel",
    "chat.delete": "channel",
    "chat.startStream": "channel",
    "chat.appendStream": "channel",
    "chat.stopStream": "channel",
    "assistant.threads.setStatus": "channel_id",
    "assistant.threads.setSuggestedPrompts": "channel_id",
    "chat.postEphemeral": "channel",
    "conversations.replies": "channel",
}
# conversations.replies: Slack's default page size and largest allowed `limit`.
REPLIES_PAGE = 1000
# A trigger_id (shortcut, slash command, button) opens a modal only this long.
TRIGGER_SECONDS = 3.0
# Slack's documented bound on a modal's private_metadata.
PRIVATE_METADATA_LIMIT = 3000
# "You can use a response_url up to 5 times within 30 minutes" (Slack's interactivity docs).
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60
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
    started_at: float = 0.0  # monotonic time a stream started (Slack ends old ones)
    unfurl_links: bool | None = None
    history: list[str] = field(default_factory=list)
    user: str | None = None  # the author; the bot's own messages also carry `bot_id`
    bot_id: str | None = None
    files: tuple[str, ...] = ()  # names of attached files
    blocks: list[dict[str, Any]] = field(default_factory=list)  # as last posted or updated

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


@dataclass
class ResponseUrl:
    """One response_url: every post it received, and the ephemeral messages it shows
    (each a posted body; `text_of` gives the visible text)."""

    channel: str
    issued: float
    posts: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def text_of(message: dict[str, Any]) -> str:
        blocks = [b for b in message.get("blocks") or () if b.get("type") == "markdown"]
        return "".join(b["text"] for b in blocks) if blocks else str(message.get("text", ""))


def ts_key(ts: str) -> tuple[int, int]:
    """Slack timestamps ("1700000001.000001") ordered as numbers, not strings."""
    seconds, _, micros = ts.partition(".")
    return int(seconds or 0), int(micros or 0)


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


def _whole_seconds(seconds: float) -> str:
    """A Retry-After value as Slack sends it: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _oversized_section(block: Any) -> bool:
    text = block.get("text") if isinstance(block, dict) else None
    if not isinstance(text, dict) or block.get("type") != "section":
        return False
    return len(str(text.get("text", ""))) > SECTION_TEXT_LIMIT


def _check_required(method: str, params: dict[str, Any]) -> None:
    for name, error in REQUIRED_PARAMS.get(method, ()):
        value = params.get(name)
        if value is None or (value == "" and name not in MAY_BE_EMPTY):
            raise _Refusal(error, detail=f"missing required field: {name}")


@dataclass
class FakeOAuth:
    """The fake's OAuth v2 side: the app's credentials, where Slack sends the browser
    back (the app's configured redirect URL), which workspace the next install goes
    to, and every bot token it has issued (token → team id)."""

    client_id: str = "111.222"
    client_secret: str = "fake-client-secret"
    redirect_url: str = ""
    installing: tuple[str, str] = ("T0FAKE", "Fake Team")
    access_error: str | None = None  # oauth.v2.access answers this error when set
    tokens: dict[str, str] = field(default_factory=dict)
    _codes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def issue_code(self) -> str:
        code = f"code-{uuid.uuid4().hex[:12]}"
        self._codes[code] = self.installing
        return code

    def redeem(self, code: str) -> tuple[str, str] | None:
        """The workspace a code installs into; a code works once."""
        return self._codes.pop(code, None)

    def revoke(self, team_id: str) -> None:
        """Uninstall: the workspace's tokens stop working."""
        self.tokens = {t: team for t, team in self.tokens.items() if team != team_id}


class FakeSlack(SlackInteractivity):
    """The fake server; use as an async context manager."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        team_id: str = "T0FAKE",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        limits: SlackLimits | None = None,
        speed: float = 1.0,
        enforce_limits: bool = True,
        channels: Iterable[str] = DEFAULT_CHANNELS,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_SECONDS,
    ) -> None:
        """
        Args:
            limits: the rate limits to enforce; default: Slack's production limits
                (`SlackLimits()`) at `speed`.
            speed: how much faster than real time Slack's clock runs for the default limits.
            enforce_limits: False answers every call, however fast.
            channels: the workspace's channels (events add the ones they come from).
            ack_timeout, retry_delays: Socket Mode's acknowledgement deadline and the
                pause before each re-delivery (Slack's by default).
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
        self.channels: set[str] = set(channels)
        self.truncated: list[str] = []  # ts of messages whose text Slack would have cut
        self.deleted: list[FakeMessage] = []  # messages removed with chat.delete
        self._rate_limits: dict[str, tuple[int, float]] = {}
        self.asked_429s = 0  # 429s a test asked for with `rate_limit` (others are breaches)
        self._method_errors: dict[str, str] = {}  # method -> error every call gets
        self._triggers: dict[str, float] = {}  # trigger_id -> when it was issued
        self.views: dict[str, dict[str, Any]] = {}  # view id -> the view as opened
        self.response_urls: dict[str, ResponseUrl] = {}  # token -> what was posted there
        self._counts: dict[str, int] = {}
        self.limits = (limits or SlackLimits(speed=speed)) if enforce_limits else None
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._changed = asyncio.Event()
        self._init_interactivity()
        self.socket_mode = EnvelopeDelivery(
            self._sockets, self._notify, ack_timeout=ack_timeout, retry_delays=retry_delays
        )
        self.oauth = FakeOAuth()
        self._caller_token = ""
        self._caller_basic_auth: BasicAuth | None = None

    # Lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/link/", self._socket_mode)
        app.router.add_get("/oauth/v2/authorize", self._authorize_page)
        app.router.add_post("/response/{token}", self._response_url)
        self._runner, self.port = await serve_app(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.socket_mode.close()
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
        """Answer the `nth` call (1-based, counted from now on) of `method` with a 429
        (its Retry-After rounded up to whole seconds, as Slack sends it)."""
        self._rate_limits[method] = (self._counts.get(method, 0) + nth, retry_after)
        self.asked_429s += 1

    def refuse(self, method: str, error: str) -> None:
        """Answer every later call of `method` with `error` (e.g. `missing_scope`)."""
        self._method_errors[method] = error

    # Inspection ------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    def replies(self, channel: str, thread_ts: str | None) -> list[FakeMessage]:
        """Bot messages in a thread (or at the top level when `thread_ts` is None)."""
        return [
            m
            for m in self.messages.values()
            if m.channel == channel and m.thread_ts == thread_ts and m.bot_id is not None
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

    # People's messages (threads the bot joins late) ------------------------------------

    def add_user_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        files: tuple[str, ...] = (),
    ) -> FakeMessage:
        """A person's message, stored so `conversations.replies` returns it; deliver it
        as an event with `message_event` when the bot should hear about it."""
        message = FakeMessage(
            channel=channel, ts=self._next_ts(), thread_ts=thread_ts, text=text, user=user
        )
        message.history.append(text)
        message.files = files
        self.messages[message.ts] = message
        return message

    def message_event(self, message: FakeMessage, *, kind: str = "app_mention") -> dict[str, Any]:
        """The Events API body for a stored person's message (`app_mention` or `message`)."""
        event: dict[str, Any] = {
            "type": kind,
            "user": message.user,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "team": self.team_id,
        }
        if kind == "message":
            event["channel_type"] = "channel"
        if message.thread_ts:
            event["thread_ts"] = message.thread_ts
        if message.files:
            event["files"] = [{"name": name} for name in message.files]
        return self.event_body(event)

    # Interactivity: shortcuts and modals ------------------------------------------------

    def _trigger(self) -> str:
        trigger_id = f"{next(self._ts)}.{uuid.uuid4().hex[:12]}"
        self._triggers[trigger_id] = time.monotonic()
        return trigger_id

    def _actor(self, user: str) -> dict[str, Any]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team_id}

    async def send_interactive(self, payload: dict[str, Any]) -> str:
        """Deliver an interactivity payload (shortcut, view_submission, block_actions)
        over Socket Mode, as Slack does (envelope type `interactive`)."""
        await self.wait_until(lambda: bool(self._sockets))
        return await self.socket_mode.send(payload, kind="interactive")

    def message_shortcut(
        self, message: FakeMessage, callback_id: str, *, user: str = "U1"
    ) -> dict[str, Any]:
        """The payload of a person choosing a message shortcut on `message`."""
        data: dict[str, Any] = self._message_json(message, message.thread_ts or message.ts)
        if not message.thread_ts:
            data.pop("thread_ts", None)
        return {
            "type": "message_action",
            "callback_id": callback_id,
            "trigger_id": self._trigger(),
            "team": {"id": self.team_id, "domain": "fake"},
            "channel": {"id": message.channel, "name": "general"},
            "user": self._actor(user),
            "message_ts": message.ts,
            "message": data,
            "response_url": f"{self.url}/response/{uuid.uuid4().hex}",
            "token": "verification-token-unused",
        }

    # Interactivity: slash commands, response_url, buttons -----------------------------------

    def _new_response_url(self, channel: str) -> str:
        token = uuid.uuid4().hex
        self.response_urls[token] = ResponseUrl(channel=channel, issued=time.monotonic())
        return f"{self.url}/response/{token}"

    def slash_command(
        self, command: str, text: str, *, channel: str = "C1", user: str = "U1"
    ) -> dict[str, Any]:
        """The payload of a person running a slash command (Socket Mode `slash_commands`)."""
        self.channels.add(channel)
        return {
            "token": "verification-token-unused",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "AFAKE",
            "is_enterprise_install": "false",
            "response_url": self._new_response_url(channel),
            "trigger_id": self._trigger(),
        }

    async def send_slash_command(self, payload: dict[str, Any]) -> str:
        await self.wait_until(lambda: bool(self._sockets))
        return await self.socket_mode.send(payload, kind="slash_commands")

    def response_url_of(self, payload: dict[str, Any]) -> ResponseUrl:
        """What was posted to a payload's response_url."""
        return self.response_urls[str(payload["response_url"]).rsplit("/", 1)[-1]]

    def button_press(
        self, payload: dict[str, Any], action_id: str, *, user: str = "U1"
    ) -> dict[str, Any]:
        """A `block_actions` payload: `user` presses button `action_id` on the ephemeral
        message shown through `payload`'s response_url (a fresh response_url comes with it)."""
        shown = self.response_url_of(payload)
        message = shown.messages[-1]
        button = next(
            element
            for block in message.get("blocks") or ()
            if block.get("type") == "actions"
            for element in block["elements"]
            if element.get("action_id") == action_id
        )
        return {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": self._actor(user),
            "channel": {"id": shown.channel, "name": "general"},
            "container": {"type": "message", "channel_id": shown.channel, "is_ephemeral": True},
            "trigger_id": self._trigger(),
            "response_url": self._new_response_url(shown.channel),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "actions",
                    "value": button.get("value"),
                    "text": button.get("text"),
                    "action_ts": str(time.time()),
                }
            ],
        }

    async def _response_url(self, request: web.Request) -> web.Response:
        """A response_url: at most RESPONSE_URL_USES posts within RESPONSE_URL_SECONDS;
        `replace_original` replaces the latest message shown through it."""
        shown = self.response_urls.get(request.match_info["token"])
        if shown is None:
            return web.Response(status=404, text="invalid_token")
        body = await request.json()
        shown.posts.append(body)
        try:
            if len(shown.posts) > RESPONSE_URL_USES:
                return web.Response(status=404, text="used_url")
            if time.monotonic() - shown.issued > RESPONSE_URL_SECONDS:
                return web.Response(status=404, text="expired_url")
            try:
                self._visible_text(body)
            except _Refusal as refusal:
                return web.Response(status=400, text=refusal.error)
            if body.get("replace_original") and shown.messages:
                shown.messages[-1] = body
            else:
                shown.messages.append(body)
            return web.Response(status=200, text="ok")
        finally:
            self._notify()

    def view_submission(
        self, view_id: str, text: str | None = None, *, user: str = "U1"
    ) -> dict[str, Any]:
        """The payload of a person submitting an opened modal; `text` replaces the first
        plain-text input's initial value (None keeps it)."""
        view = self.views[view_id]
        values: dict[str, Any] = {}
        for block in view.get("blocks") or ():
            element = block.get("element") or {}
            if block.get("type") == "input" and element.get("type") == "plain_text_input":
                value = element.get("initial_value", "") if text is None else text
                values[block["block_id"]] = {
                    element["action_id"]: {"type": "plain_text_input", "value": value}
                }
                text = None if text is None else ""  # only the first input gets `text`
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": self._actor(user),
            "trigger_id": self._trigger(),
            "view": {**view, "state": {"values": values}},
            "token": "verification-token-unused",
        }

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        issued = self._triggers.pop(str(params["trigger_id"]), None)
        if issued is None:
            raise _Refusal("invalid_trigger_id")
        if time.monotonic() - issued > TRIGGER_SECONDS:
            raise _Refusal("expired_trigger_id")
        view = params["view"]
        if isinstance(view, str):
            view = json.loads(view)
        if view.get("type") != "modal" or not view.get("title"):
            raise _Refusal("invalid_arguments", detail="view: a modal with a title")
        if len(view.get("private_metadata") or "") > PRIVATE_METADATA_LIMIT:
            raise _Refusal("invalid_arguments", detail="private_metadata is too long")
        view_id = f"V{uuid.uuid4().hex[:10].upper()}"
        self.views[view_id] = {**view, "id": view_id, "team_id": self.team_id}
        return {"view": self.views[view_id]}

    # Events ----------------------------------------------------------------------------

    def event_body(
        self, event: dict[str, Any], *, event_id: str | None = None, team_id: str | None = None
    ) -> dict[str, Any]:
        """Wrap an event the way the Events API does (`event_callback`). The channel it
        comes from is one the workspace has, from now on. `team_id`: the workspace it
        comes from (default: the fake's own)."""
        for holder in (event, event.get("assistant_thread") or {}):
            for key in ("channel", "channel_id"):
                if isinstance(holder.get(key), str):
                    self.channels.add(holder[key])
        team_id = team_id or self.team_id
        return {
            "token": "verification-token-unused",
            "team_id": team_id,
            "api_app_id": "AFAKE",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team_id, "user_id": self.bot_user_id, "is_bot": True}],
        }

    async def send_event(
        self, payload: dict[str, Any], *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Deliver an Events API payload over the newest Socket Mode connection; if it is
        not acknowledged within the deadline, Slack's re-deliveries follow."""
        await self.wait_until(lambda: bool(self._sockets))
        return await self.socket_mode.send(
            payload, retry_attempt=retry_attempt, retry_reason=retry_reason
        )

    @property
    def acks(self) -> dict[str, dict[str, Any]]:
        """envelope id → the acknowledgement the client sent."""
        return self.socket_mode.acks

    @property
    def redeliveries(self) -> list[Delivery]:
        """Envelopes Slack re-sent because the first was not acknowledged in time."""
        return self.socket_mode.redeliveries

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
                    self.socket_mode.acknowledged(data["envelope_id"], data)
        finally:
            self._sockets.remove(socket)
        return socket

    # Web API ---------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        form: Mapping[str, Any] = {}
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.body_exists:
            form = await request.post()
            params.update(form)
        self.calls.append(SlackCall(method, params, dict(request.headers), time.monotonic()))
        self._counts[method] = self._counts.get(method, 0) + 1
        try:
            self._check_rate_limit(method)
            self._check_limits(method, params)
            self._check_token(method, request, form)
            if method in self._method_errors:
                raise _Refusal(self._method_errors[method])
            handler = self._METHODS.get(method)
            if handler is None:
                raise _Refusal("unknown_method")
            _check_required(method, params)
            self._check_channel(method, params)
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
            raise _Refusal("ratelimited", 429, {"Retry-After": _whole_seconds(limit[1])})

    def _check_limits(self, method: str, params: dict[str, Any]) -> None:
        """Refuse a call over a rate limit (`SlackLimits`); count it otherwise."""
        retry_after = None if self.limits is None else self.limits.over(method, params)
        if retry_after is not None:
            header = self.limits.retry_after_header(retry_after) if self.limits else ""
            raise _Refusal("ratelimited", 429, {"Retry-After": header})

    def _streaming(self, message: FakeMessage) -> bool:
        """Whether `message` still streams: Slack ends a stream left open too long, keeping
        what was appended (later appends and stops fail)."""
        limits = self.limits
        if message.streaming and limits and limits.stream_expired(message.started_at):
            message.streaming = False
        return message.streaming

    # Strictness ------------------------------------------------------------------------

    def _check_token(self, method: str, request: web.Request, form: Mapping[str, Any]) -> None:
        """Slack reads the token from the Authorization header, or from a form-encoded
        body; a `token` inside a JSON body (or the query string) counts as no token."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() or str(form.get("token", ""))
        self._caller_token = token
        self._caller_basic_auth = None
        if header.startswith("Basic "):
            self._caller_basic_auth = BasicAuth.decode(header)
        if method == "oauth.v2.access" or token in self.oauth.tokens:
            return  # authenticated by the client secret / a workspace's installed token
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token == wanted:
            return
        if token in (self.app_token, self.bot_token):
            raise _Refusal("not_allowed_token_type")
        raise _Refusal("not_authed" if not token else "invalid_auth")

    def _check_channel(self, method: str, params: dict[str, Any]) -> None:
        name = CHANNEL_PARAM.get(method)
        if name is not None and str(params[name]) not in self.channels:
            raise _Refusal("channel_not_found")

    def _shown(self, message: FakeMessage, params: dict[str, Any]) -> None:
        """Show the call's text on `message`, cut where Slack cuts it."""
        text = self._visible_text(params)
        blocks = params.get("blocks") or []
        blocks = json.loads(blocks) if isinstance(blocks, str) else list(blocks)
        self._check_interactive_blocks(blocks)
        message.blocks = blocks
        if len(text) > TEXT_LIMIT:
            self.truncated.append(message.ts)
            text = text[:TEXT_LIMIT]
        message.show(text)

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
            if len(blocks) > MAX_BLOCKS or any(_oversized_section(b) for b in blocks):
                raise _Refusal("invalid_blocks")
            texts = [
                b.get("text", "") if b.get("type") == "markdown" else b["text"].get("text", "")
                for b in blocks
                if b.get("type") == "markdown" or (b.get("type") == "section" and b.get("text"))
            ]
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
        team_id = self.oauth.tokens.get(self._caller_token, self.team_id)
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "bridge",
            "team_id": team_id,
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
            user=self.bot_user_id,
            bot_id=self.bot_id,
        )
        self._shown(message, params)
        self.messages[message.ts] = message
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        if self._streaming(message):
            raise _Refusal("streaming_state_conflict")
        self._shown(message, params)
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
            user=self.bot_user_id,
            bot_id=self.bot_id,
            started_at=time.monotonic(),
        )
        message.show(self._markdown_text(params))
        self.messages[message.ts] = message
        return {"channel": channel, "ts": message.ts}

    def _append_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming_supported:
            raise _Refusal("unknown_method")
        message = self._message(params)
        if not self._streaming(message):
            raise _Refusal("message_not_in_streaming_state")
        message.show(message.text + self._markdown_text(params))
        return {"channel": message.channel, "ts": message.ts}

    def _stop_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming_supported:
            raise _Refusal("unknown_method")
        message = self._message(params)
        if not self._streaming(message):
            raise _Refusal("message_not_in_streaming_state")
        message.streaming = False
        message.show(message.text + self._markdown_text(params))
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread oldest first, parent included, paged by `limit` and `cursor`;
        `latest` / `oldest` bound it (`inclusive` keeps the bounds), as Slack does."""
        channel, parent = str(params["channel"]), str(params["ts"])
        root = self.messages.get(parent)
        if root is None or root.channel != channel:
            raise _Refusal("thread_not_found")
        parent = root.thread_ts or root.ts
        inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")
        latest, oldest = params.get("latest"), params.get("oldest")

        def within(ts: str) -> bool:
            key = ts_key(ts)
            if latest is not None:
                bound = ts_key(str(latest))
                if key > bound or (key == bound and not inclusive):
                    return False
            if oldest is not None:
                bound = ts_key(str(oldest))
                if key < bound or (key == bound and not inclusive):
                    return False
            return True

        thread = sorted(
            (
                m
                for m in self.messages.values()
                if m.channel == channel and (m.ts == parent or m.thread_ts == parent)
            ),
            key=lambda m: ts_key(m.ts),
        )
        thread = [m for m in thread if within(m.ts)]
        start = int(params.get("cursor") or 0)
        limit = min(int(params.get("limit") or REPLIES_PAGE), REPLIES_PAGE)
        page = thread[start : start + limit]
        more = start + limit < len(thread)
        return {
            "messages": [self._message_json(m, parent) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    @staticmethod
    def _message_json(message: FakeMessage, parent: str) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text}
        if message.user:
            data["user"] = message.user
        if message.bot_id:
            data["bot_id"] = message.bot_id
        if message.ts != parent or message.thread_ts:
            data["thread_ts"] = parent
        if message.files:
            data["files"] = [{"id": f"F{i}", "name": name} for i, name in enumerate(message.files)]
        return data

    def _accept(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _delete(self, params: dict[str, Any]) -> dict[str, Any]:
        """chat.delete of one of the bot's messages (gone for good; `deleted` remembers)."""
        message = self._message(params)
        if message.bot_id is None:
            raise _Refusal("cant_delete_message")
        del self.messages[message.ts]
        self.deleted.append(message)
        return {"channel": message.channel, "ts": message.ts}

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
        "chat.delete": lambda self, params: self._delete(params),
        "chat.startStream": _start_stream,
        "chat.appendStream": _append_stream,
        "chat.stopStream": _stop_stream,
        "assistant.threads.setStatus": _accept,
        "assistant.threads.setSuggestedPrompts": _suggested_prompts,
        "conversations.replies": _conversations_replies,
        "views.open": _views_open,
        "chat.postEphemeral": SlackInteractivity._post_ephemeral,
        "oauth.v2.access": lambda self, params: self._oauth_access(params),
    }

    # OAuth (workspace installs) ----------------------------------------------------------

    def calls_with_token(self, token: str) -> list[SlackCall]:
        """Calls authenticated with `token` (which workspace's token answered)."""
        return [
            call
            for call in self.calls
            if call.headers.get("Authorization", "") == f"Bearer {token}"
            or call.params.get("token") == token
        ]

    async def _authorize_page(self, request: web.Request) -> web.Response:
        """Slack's consent page: the workspace in `oauth.installing`, Allow or Cancel."""
        query = request.query
        oauth = self.oauth
        if query.get("client_id") != oauth.client_id:
            return web.Response(status=400, text="invalid client_id")
        state = query.get("state", "")
        code = oauth.issue_code()
        allow = f"{oauth.redirect_url}?code={code}&state={state}"
        deny = f"{oauth.redirect_url}?error=access_denied&state={state}"
        page = (
            "<!doctype html><html><head><title>Fake Slack: install</title></head><body>"
            f"<h1>Install in {oauth.installing[1]}?</h1>"
            f"<p>Scopes: {query.get('scope', '')}</p>"
            f"<a id='allow' href='{allow}'>Allow</a> <a id='cancel' href='{deny}'>Cancel</a>"
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    def _oauth_access(self, params: dict[str, Any]) -> dict[str, Any]:
        oauth = self.oauth
        if oauth.access_error is not None:
            raise _Refusal(oauth.access_error)
        team = oauth.redeem(str(params.get("code", "")))
        basic = self._caller_basic_auth
        secret = basic.password if basic is not None else params.get("client_secret")
        if secret != oauth.client_secret:
            raise _Refusal("invalid_client")
        if team is None:
            raise _Refusal("invalid_code")
        team_id, team_name = team
        token = f"xoxb-{team_id}-{uuid.uuid4().hex[:8]}"
        oauth.tokens[token] = team_id
        return {
            "app_id": "AFAKE",
            "access_token": token,
            "token_type": "bot",
            "scope": "chat:write,app_mentions:read",
            "bot_user_id": self.bot_user_id,
            "team": {"id": team_id, "name": team_name},
            "authed_user": {"id": "UINSTALLER"},
            "is_enterprise_install": False,
        }
