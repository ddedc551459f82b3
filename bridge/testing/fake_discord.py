"""A fake Discord (REST API + gateway websocket) on 127.0.0.1 for driving the real
discord.py client in tests and demos.

It keeps just enough state to answer what the bridge asks (users, one guild with a text
channel, DM channels, messages, threads, interactions and their webhook messages),
records every REST request for assertions, and can inject the failures real Discord
produces: a 429 with `Via` and JSON `retry_after`, or any status with a Discord error
code (50013 missing permissions, 50007 closed DMs, 10003 unknown channel).

Like real Discord it withholds message content from a client that did not ask for the
privileged message-content intent, except in DMs and messages that mention the bot, and
lists only active (not archived) threads in GUILD_CREATE. A message in an archived thread
unarchives it without a THREAD_UPDATE, so the client sees a channel it has not cached
(as when that event comes late): `archive_thread` sets this up.

It enforces Discord's rate limits by default (`discord_limits.py`): 50 requests/s per
bot, and per-route buckets whose truthful `X-RateLimit-*` headers come with every
success; `speed` runs Discord's clock faster, `enforce_limits=False` turns them off.

By default it also refuses what Discord refuses (`discord_rules.py`, tests/README.md):
content over 2,000 characters, an edit sent to the wrong channel or of another user's
message, a guild action without the permission it needs (`revoke` takes one away), and
an interaction answered late (after 3 s) or twice.

    async with FakeDiscord() as fake:
        settings = load_settings(discord_token="x", discord_api_url=fake.api_url)
        ...
        await fake.user_message(fake.dm_channel(fake.alice), "hello")
        await fake.wait_for(lambda: fake.messages_in(channel))
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bridge.testing import discord_rules as rules
from bridge.testing.discord_limits import DiscordLimits
from bridge.testing.server import serve_app

_log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
RECHECK_SECONDS = 0.05  # how often wait_for re-checks conditions on state outside the fake
# Real Discord asks for a heartbeat every ~41 s; tests end long before that.
HEARTBEAT_INTERVAL_MS = 41_250
MESSAGE_CONTENT_INTENT = 1 << 15
CLOSE_DISALLOWED_INTENTS = 4014  # privileged intent requested but not enabled
# Discord message flags / response types used below.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
RESPONSE_CHANNEL_MESSAGE = 4
RESPONSE_DEFERRED_CHANNEL_MESSAGE = 5
CHANNEL_TEXT, CHANNEL_DM, CHANNEL_PUBLIC_THREAD, CHANNEL_FORUM = 0, 1, 11, 15
MESSAGE_DEFAULT, MESSAGE_REPLY, MESSAGE_CHAT_INPUT_COMMAND = 0, 19, 20
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_MESSAGE_COMPONENT = 3
INTERACTION_MODAL_SUBMIT = 5
COMPONENT_BUTTON = 2
COMMAND_CHAT_INPUT, COMMAND_MESSAGE = 1, 3
OPTION_STRING, OPTION_BOOLEAN = 3, 5
RESPONSE_MODAL = 9
COMPONENT_LABEL = 18

Json = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One REST call the client made. `path` is relative to the API prefix."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    at: float  # time.monotonic() on arrival


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)
    skip: int = 0  # let this many matching requests through first


def _archived(thread: Json) -> bool:
    return bool(thread["thread_metadata"]["archived"])


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    # Exactly `application/json`: discord.py's login fails on `; charset=utf-8`.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


class FakeDiscord:
    """Fake Discord REST + gateway. Use as an async context manager.

    Attributes:
        api_url: REST base for `DISCORD_API_URL` (`http://127.0.0.1:PORT/api/v10`).
        gateway_url: websocket URL (`ws://127.0.0.1:PORT/gateway`), also served by
            `GET /gateway/bot`.
        bot: the bot's user payload; `alice`, `bob`: two people.
        guild_id, channel_id: the one guild and its text channel.
        requests: every REST request, in order.
        messages: message id -> latest message payload.
        threads: thread id -> thread payload.
        identifies: IDENTIFY payloads received on the gateway.
    """

    def __init__(
        self,
        *,
        application_id: str = "700000000000000001",
        token: str | None = None,
        message_content_enabled: bool = True,
        limits: DiscordLimits | None = None,
        speed: float = 1.0,
        enforce_limits: bool = True,
    ) -> None:
        """
        Args:
            application_id: also the bot user's id, as on Discord.
            token: when set, only `Bot <token>` is accepted (others get 401).
            message_content_enabled: whether the privileged intent is enabled "in the
                Developer Portal"; IDENTIFY asking for it otherwise closes with 4014.
            limits: the rate limits to enforce; default: Discord's (`DiscordLimits()`)
                at `speed`; `enforce_limits=False` answers every request at once.
        """
        self.limits = (limits or DiscordLimits(speed=speed)) if enforce_limits else None
        self._token = token
        self._message_content_enabled = message_content_enabled
        self._ids = itertools.count(900_000_000_000_000_000)
        self.application_id = application_id
        self.bot = self.make_user("bridge-bot", bot=True, user_id=application_id)
        self.alice = self.make_user("alice")
        self.bob = self.make_user("bob")
        self.guild_id = self.next_id()
        self.channel_id = self.next_id()
        self.channels: dict[str, Json] = {}
        self.channels[self.channel_id] = self._guild_channel(
            self.channel_id, CHANNEL_TEXT, "general"
        )
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, Json] = {}
        self.threads: dict[str, Json] = {}
        self.identifies: list[Json] = []
        self.commands: dict[str, list[Json]] = {}
        self._interactions: dict[str, Json] = {}  # token -> interaction state
        # The bot's permissions in the guild (every bit until a test revokes some), and
        # how long an interaction may wait for its first response.
        self.permissions = rules.ALL_PERMISSIONS
        self.interaction_deadline = rules.INTERACTION_DEADLINE_SECONDS
        self.refusals: list[rules.Refusal] = []  # what the rules refused, in order
        self._failures: list[_Failure] = []
        self._query: dict[str, str] = {}  # the query of the request being routed
        self._pending_events: list[tuple[str, Json]] = []  # sent after the REST handler
        self._sockets: list[web.WebSocketResponse] = []
        # The [shard_id, shard_count] each connection IDENTIFYed with (default [0, 1]).
        self._shards: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self.deliveries: list[tuple[int, str]] = []  # (shard id, event) of every dispatch
        self.recommended_shards = 1  # what GET /gateway/bot recommends
        self._seq = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get(GATEWAY_PATH, self._gateway)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner, self.port = await serve_app(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"

    # Builders --------------------------------------------------------------------------

    def next_id(self) -> str:
        return str(next(self._ids))

    def make_user(self, name: str, *, bot: bool = False, user_id: str | None = None) -> Json:
        return {
            "id": user_id or self.next_id(),
            "username": name,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": bot,
        }

    def dm_channel(self, user: Json) -> str:
        """The id of the DM channel between the bot and `user` (created on first use)."""
        for channel in self.channels.values():
            if channel["type"] == CHANNEL_DM and channel["recipients"][0]["id"] == user["id"]:
                return str(channel["id"])
        channel_id = self.next_id()
        self.channels[channel_id] = {
            "id": channel_id,
            "type": CHANNEL_DM,
            "recipients": [user],
            "last_message_id": None,
        }
        return channel_id

    def _member(self, user: Json) -> Json:
        return {
            "user": user,
            "roles": [],
            "joined_at": _now(),
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def _guild_payload(self) -> Json:
        return {
            "id": self.guild_id,
            "name": "Fake Guild",
            "icon": None,
            "owner_id": self.alice["id"],
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {
                    "id": self.guild_id,
                    "name": "@everyone",
                    "permissions": str(self.permissions),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_flags": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "unavailable": False,
            "large": False,
            "member_count": 3,
            "joined_at": _now(),
            "members": [self._member(self.bot)],
            "channels": [c for c in self.channels.values() if c.get("guild_id") == self.guild_id],
            "threads": [t for t in self.threads.values() if not _archived(t)],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_payload(
        self,
        channel_id: str,
        content: str,
        author: Json,
        *,
        mentions: Iterable[Json] = (),
        reply_to: str | None = None,
        flags: int = 0,
    ) -> Json:
        message: Json = {
            "id": self.next_id(),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": list(mentions),
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": MESSAGE_DEFAULT,
            "flags": flags,
        }
        if reply_to is not None:
            message["type"] = MESSAGE_REPLY
            message["message_reference"] = {"message_id": reply_to, "channel_id": channel_id}
            referenced = self.messages.get(reply_to)
            if referenced is not None:
                message["referenced_message"] = dict(referenced)
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            message["guild_id"] = guild_id
        return message

    def archive_thread(self, thread_id: str) -> None:
        """Archive a thread (as Discord does after its auto-archive duration): later
        GUILD_CREATEs leave it out, so a freshly connected client does not cache it."""
        self.threads[thread_id]["thread_metadata"]["archived"] = True

    def _guild_of(self, channel_id: str) -> str | None:
        channel = self.channels.get(channel_id) or self.threads.get(channel_id)
        return None if channel is None else channel.get("guild_id")

    # Driving the client ---------------------------------------------------------------

    async def dispatch(self, event: str, data: Json) -> None:
        """Send one DISPATCH event to every connected gateway client that should get it:
        a guild's events go to the shard owning the guild, others (DMs) to shard 0."""
        self._seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        for ws in list(self._sockets):
            shard = self._shards.get(ws, (0, 1))
            if self._shard_owns(shard, guild_id):
                self.deliveries.append((shard[0], event))
                await ws.send_str(frame)
        await self._notify()

    # Sharding -------------------------------------------------------------------------

    @staticmethod
    def shard_of(guild_id: str | None, shard_count: int) -> int:
        """Discord's rule: a guild belongs to shard (guild_id >> 22) % shard_count; DMs
        to shard 0."""
        return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count

    def _shard_owns(self, shard: tuple[int, int], guild_id: str | None) -> bool:
        shard_id, shard_count = shard
        return self.shard_of(guild_id, shard_count) == shard_id

    async def user_message(self, channel_id: str, content: str, **options: Any) -> Json:
        """A person (alice by default) posts `content`; the client gets MESSAGE_CREATE.

        `options` are those of `store_user_message`. Returns the full stored payload
        (content is withheld on the gateway when the client lacks the message-content
        intent, as Discord does).
        """
        message = self.store_user_message(channel_id, content, **options)
        await self.dispatch("MESSAGE_CREATE", self._as_received(message))
        return message

    def store_user_message(
        self,
        channel_id: str,
        content: str,
        *,
        author: Json | None = None,
        mention_bot: bool = False,
        reply_to: str | None = None,
        ping_replied: bool = True,
        files: Iterable[str] = (),
        mentions: Iterable[Json] = (),
    ) -> Json:
        """A person's message, stored (returned by `GET /channels/{id}/messages`) but not
        sent on the gateway: history the bot joins later. `user_message` also sends it.

        With `mention_bot`, `<@bot>` is prefixed and the bot is listed in `mentions`. A
        reply to the bot pings it (lists it in `mentions`) unless `ping_replied` is off.
        `files` attaches files by name; `mentions` lists people the content mentions.
        """
        author = author or self.alice
        if channel_id in self.threads:
            self.threads[channel_id]["thread_metadata"]["archived"] = False  # posting revives
        mentions = list(mentions)
        if mention_bot:
            content = f"<@{self.bot['id']}> {content}"
            mentions.append(self.bot)
        replied_author = self.messages.get(reply_to or "", {}).get("author")
        if ping_replied and replied_author == self.bot:
            mentions.append(self.bot)
        message = self._message_payload(
            channel_id, content, author, mentions=mentions, reply_to=reply_to
        )
        message["attachments"] = [self._attachment(name) for name in files]
        self.messages[message["id"]] = message
        return message

    def _attachment(self, name: str) -> Json:
        attachment_id = self.next_id()
        url = f"https://cdn.fake-discord.test/attachments/{attachment_id}/{name}"
        return {"id": attachment_id, "filename": name, "size": 1, "url": url, "proxy_url": url}

    def _as_received(self, message: Json) -> Json:
        """A stored message as a client receives it: with its member in a guild, and
        without content, attachments and embeds when the client lacks the message-content
        intent and the message does not mention the bot (DMs always carry them)."""
        sent = dict(message)
        if sent.get("guild_id"):
            author = message["author"]
            sent["member"] = {k: v for k, v in self._member(author).items() if k != "user"}
            mentions_bot = any(user["id"] == self.bot["id"] for user in message["mentions"])
            own = author["id"] == self.bot["id"]
            if not self._client_reads_content() and not mentions_bot and not own:
                sent |= {"content": "", "attachments": [], "embeds": []}
        return sent

    def _client_reads_content(self) -> bool:
        return bool(self.identifies) and bool(
            int(self.identifies[-1].get("intents", 0)) & MESSAGE_CONTENT_INTENT
        )

    async def run_command(
        self,
        name: str,
        options: dict[str, str | bool] | None = None,
        *,
        channel_id: str,
        user: Json | None = None,
    ) -> Json:
        """A person runs slash command `name`; the client gets INTERACTION_CREATE.

        Returns the interaction payload; its `token` keys `interaction_messages`.
        """
        channel = self.channels.get(channel_id) or self.threads[channel_id]
        data = self._command_data(name, options or {}, channel.get("guild_id"))
        return await self._interact(INTERACTION_APPLICATION_COMMAND, data, channel_id, user)

    async def _interact(
        self,
        kind: int,
        data: Json,
        channel_id: str,
        user: Json | None,
        *,
        message: Json | None = None,
    ) -> Json:
        """Dispatch an interaction of `kind` by `user` (alice) in `channel_id`."""
        user = user or self.alice
        token = f"itoken-{self.next_id()}"
        channel = self.channels.get(channel_id) or self.threads[channel_id]
        interaction: Json = {
            "id": self.next_id(),
            "application_id": self.application_id,
            "type": kind,
            "token": token,
            "version": 1,
            "attachment_size_limit": 8 * 1024 * 1024,
            "data": data,
            "channel_id": channel_id,
            "channel": channel,
            "app_permissions": str(self.permissions),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
        }
        if message is not None:
            interaction["message"] = message
        guild_id = channel.get("guild_id")
        if guild_id:
            interaction["guild_id"] = guild_id
            interaction["context"] = 0
            interaction["member"] = {**self._member(user), "permissions": str(self.permissions)}
        else:
            interaction["context"] = 1
            interaction["user"] = user
        self._interactions[token] = {
            "payload": interaction,
            "messages": [],
            "callbacks": [],
            "created": time.monotonic(),
        }
        await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    # Context menus and modals ------------------------------------------------------------

    async def run_message_command(
        self, name: str, message_id: str, *, user: Json | None = None
    ) -> Json:
        """A person picks message context-menu command `name` (Apps → name) on a message."""
        message = self.messages[message_id]
        channel_id = message["channel_id"]
        data = self._registered(name, COMMAND_MESSAGE, self._guild_of(channel_id))
        data |= {
            "type": COMMAND_MESSAGE,
            "target_id": message_id,
            # Message commands carry the content whatever the intents (Discord's rule).
            "resolved": {"messages": {message_id: dict(message)}},
        }
        return await self._interact(INTERACTION_APPLICATION_COMMAND, data, channel_id, user)

    async def press_button(
        self, message_id: str, custom_id: str, *, user: Json | None = None
    ) -> Json:
        """A person presses button `custom_id` on a bot message (ephemeral ones too)."""
        message = self.messages[message_id]
        data = {"custom_id": custom_id, "component_type": COMPONENT_BUTTON}
        interaction = await self._interact(
            INTERACTION_MESSAGE_COMPONENT, data, message["channel_id"], user, message=message
        )
        return interaction

    def buttons(self, message_id: str) -> list[Json]:
        """The buttons on a message, in order."""
        rows = self.messages[message_id].get("components") or []
        return [
            c for row in rows for c in row.get("components", []) if c["type"] == COMPONENT_BUTTON
        ]

    def public_messages_in(self, channel_id: str) -> list[Json]:
        """Bot messages everyone in the channel sees (ephemeral ones left out)."""
        return [m for m in self.bot_messages_in(channel_id) if not m["flags"] & FLAG_EPHEMERAL]

    def modal_of(self, token: str) -> Json | None:
        """The modal an interaction was answered with (callback type 9), if any."""
        for callback in self._interactions[token]["callbacks"]:
            if callback["type"] == RESPONSE_MODAL:
                return dict(callback["data"])
        return None

    async def submit_modal(
        self, token: str, values: dict[str, str] | None = None, *, user: Json | None = None
    ) -> Json:
        """Submit the modal interaction `token` opened; text inputs keep their default
        `value` unless `values` (custom_id → text) says otherwise."""
        modal = self.modal_of(token)
        assert modal is not None, "that interaction opened no modal"
        values = values or {}

        def submitted(component: Json) -> Json:
            if component["type"] == 1:
                return {"type": 1, "components": [submitted(c) for c in component["components"]]}
            if component["type"] == COMPONENT_LABEL:
                return {"type": COMPONENT_LABEL, "component": submitted(component["component"])}
            custom_id = component.get("custom_id", "")
            value = values.get(custom_id, component.get("value") or "")
            return {"type": component["type"], "custom_id": custom_id, "value": value}

        data = {
            "custom_id": modal["custom_id"],
            "components": [submitted(c) for c in modal["components"]],
        }
        channel_id = self._interactions[token]["payload"]["channel_id"]
        return await self._interact(INTERACTION_MODAL_SUBMIT, data, channel_id, user)

    def _command_data(
        self, name: str, options: dict[str, str | bool], guild_id: str | None
    ) -> Json:
        """The command part of an interaction as Discord sends it: the registered
        command's id, plus `guild_id` when it was registered in that guild (discord.py
        looks guild commands up by it). Options are strings, or booleans (type 5)."""
        data = self._registered(name, COMMAND_CHAT_INPUT, guild_id)
        data["options"] = [
            {
                "name": k,
                "type": OPTION_BOOLEAN if isinstance(v, bool) else OPTION_STRING,
                "value": v,
            }
            for k, v in options.items()
        ]
        return data

    def _registered(self, name: str, kind: int, guild_id: str | None) -> Json:
        """`id` / `name` / `type` (and `guild_id`) of the registered command `name`."""
        data: Json = {"id": self.next_id(), "name": name, "type": kind}
        for scope in (guild_id, "global"):
            command = next(
                (
                    c
                    for c in self.commands.get(scope or "", [])
                    if c["name"] == name and c.get("type", 1) == kind
                ),
                None,
            )
            if command is not None:
                data["id"] = command["id"]
                if scope != "global":
                    data["guild_id"] = scope
                break
        return data

    # Strictness: permissions -------------------------------------------------------------

    def revoke(self, *permissions: int) -> None:
        """Take permissions (`discord_rules` bits) from the bot in the guild, as a server
        admin would; later guild calls that need one get Discord's 403."""
        for permission in permissions:
            self.permissions &= ~permission

    def grant(self, *permissions: int) -> None:
        for permission in permissions:
            self.permissions |= permission

    def _permission_refusal(self, channel_id: str, needed: int) -> rules.Refusal | None:
        """Guild channels and threads need permissions; DMs do not."""
        if self._guild_of(channel_id) is None:
            return None
        return rules.permission_refusal(self.permissions, needed | rules.VIEW_CHANNEL)

    def _refuse(self, refusal: rules.Refusal) -> web.Response:
        self.refusals.append(refusal)
        return refusal.response()

    def refused_callbacks(self, token: str) -> list[Json]:
        """Interaction responses Discord refused (late or a second acknowledgement)."""
        return list(self._interactions[token].get("refused_callbacks", []))

    # Failure injection -----------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        code: int = 0,
        message: str = "error",
        skip: int = 0,
    ) -> None:
        """Answer the next matching request (after `skip` matches) with a Discord error."""
        body = {"message": message, "code": code}
        self._failures.append(_Failure(method, re.compile(path_regex), status, body, skip=skip))

    def rate_limit_patch(self, nth: int = 1, *, retry_after: float = 0.3) -> None:
        """Answer the `nth` PATCH from now with a real-looking 429 (once)."""
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": str(retry_after),
            "X-RateLimit-Bucket": "fake-edit-bucket",
            "X-RateLimit-Scope": "user",
        }
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": False,
        }
        self._failures.append(
            _Failure("PATCH", re.compile(".*"), 429, body, headers=headers, skip=nth - 1)
        )

    def _injected_failure(self, method: str, path: str) -> Any | None:
        for failure in self._failures:
            if failure.method == method and failure.pattern.search(path):
                if failure.skip:
                    failure.skip -= 1
                    continue
                self._failures.remove(failure)
                return _json_response(failure.body, failure.status, failure.headers)
        return None

    # Assertions ------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], within: float = 15.0) -> Any:
        """Wait until `predicate()` is truthy; `within` is a generous bound for a
        condition, not a speed assertion.

        Re-checked after every request and event, and every `RECHECK_SECONDS` for
        conditions on other state (the relay's log, the mock backend's requests), which
        can change after the fake's last request and would otherwise never be seen.
        """
        async with asyncio.timeout(within), self._changed:
            while not (result := predicate()):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_SECONDS):
                        await self._changed.wait()
            return result

    def messages_in(self, channel_id: str) -> list[Json]:
        """Messages in one channel or thread, oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == channel_id]

    def bot_messages_in(self, channel_id: str) -> list[Json]:
        return [m for m in self.messages_in(channel_id) if m["author"]["id"] == self.bot["id"]]

    def interaction_messages(self, token: str) -> list[Json]:
        """The original response and followups of one interaction, oldest first."""
        return [self.messages[mid] for mid in self._interactions[token]["messages"]]

    def interaction_callbacks(self, token: str) -> list[Json]:
        return list(self._interactions[token]["callbacks"])

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    # REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> Any:
        path = "/" + request.match_info["tail"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        self.requests.append(
            RecordedRequest(request.method, path, dict(request.query), body, time.monotonic())
        )
        try:
            if self._rejects(request.headers.get("Authorization")):
                return _json_response({"message": "401: Unauthorized", "code": 0}, 401)
            decision = self.limits.check(request.method, path) if self.limits else None
            if decision is not None and decision.body is not None:
                return _json_response(decision.body, 429, decision.headers)
            failure = self._injected_failure(request.method, path)
            if failure is not None:
                return failure
            self._query = dict(request.query)
            response = self._route(request.method, path, body)
            if decision is not None and response.status < 300:
                response.headers.update(decision.headers)
            while self._pending_events:
                await self.dispatch(*self._pending_events.pop(0))
            return response
        finally:
            await self._notify()

    def _rejects(self, authorization: str | None) -> bool:
        """Bot-token calls must carry the configured token; interaction webhooks carry
        none (their URL token is the credential)."""
        return self._token is not None and authorization not in (None, f"Bot {self._token}")

    def _route(self, method: str, path: str, body: Any) -> Any:
        for route_method, pattern, handler in self._routes():
            if method != route_method:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                return handler(body, *match.groups())
        return _json_response({"message": "404: Not Found", "code": 0}, 404)

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", r"/users/@me", lambda _b: _json_response(self.bot)),
            ("GET", r"/oauth2/applications/@me", lambda _b: _json_response(self._application())),
            ("GET", r"/gateway/bot", lambda _b: _json_response(self._gateway_bot())),
            ("GET", r"/gateway", lambda _b: _json_response({"url": self.gateway_url})),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("POST", r"/channels/(\d+)/typing", self._typing),
            ("POST", r"/channels/(\d+)/messages", self._create_message),
            ("GET", r"/channels/(\d+)/messages", self._history),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._get_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit_message),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._create_thread),
            ("POST", r"/users/@me/channels", self._open_dm),
            ("PUT", r"/applications/(\d+)/commands", self._put_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_commands),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._interaction_callback),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/@original", self._edit_original),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._followup),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(\d+)", self._edit_followup),
        ]

    def _application(self) -> Json:
        return {
            "id": self.application_id,
            "name": "bridge",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.alice,
            # GATEWAY_MESSAGE_CONTENT (1 << 18): what the portal's intent switch sets.
            "flags": (1 << 18) if self._message_content_enabled else 0,
        }

    def _gateway_bot(self) -> Json:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return {
            "url": self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": limit,
        }

    def _get_channel(self, _body: Any, channel_id: str) -> Any:
        channel = self.channels.get(channel_id) or self.threads.get(channel_id)
        if channel is None:
            return _json_response({"message": "Unknown Channel", "code": 10003}, 404)
        return _json_response(channel)

    def _bot_message(self, channel_id: str, body: Json) -> Json:
        reference = (body.get("message_reference") or {}).get("message_id")
        message = self._message_payload(
            channel_id,
            body.get("content") or "",
            self.bot,
            reply_to=str(reference) if reference else None,
            flags=int(body.get("flags") or 0),
        )
        message["allowed_mentions"] = body.get("allowed_mentions")
        message["components"] = body.get("components") or []
        self.messages[message["id"]] = message
        return message

    def _create_message(self, body: Json, channel_id: str) -> Any:
        if channel_id not in self.channels and channel_id not in self.threads:
            return _json_response({"message": "Unknown Channel", "code": 10003}, 404)
        in_thread = channel_id in self.threads
        needed = rules.SEND_MESSAGES_IN_THREADS if in_thread else rules.SEND_MESSAGES
        if body.get("message_reference"):
            needed |= rules.READ_MESSAGE_HISTORY
        refusal = self._permission_refusal(channel_id, needed) or rules.content_refusal(body)
        if refusal is not None:
            return self._refuse(refusal)
        return _json_response(self._bot_message(channel_id, body))

    def _typing(self, _body: Any, channel_id: str) -> Any:
        refusal = self._permission_refusal(channel_id, rules.SEND_MESSAGES)
        return self._refuse(refusal) if refusal is not None else web.Response(status=204)

    def _update(self, message_id: str, body: Json) -> Any:
        message = self.messages.get(message_id)
        if message is None:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        if "content" in body:
            message["content"] = body["content"] or ""
        flags = int(body["flags"] or 0) if "flags" in body else message["flags"]
        flags = (flags & ~FLAG_EPHEMERAL) | (message["flags"] & FLAG_EPHEMERAL)  # fixed
        message["flags"] = flags & ~FLAG_LOADING  # an edit ends the "thinking…" state
        if "components" in body:
            message["components"] = body["components"] or []
        message["edited_timestamp"] = _now()
        message["allowed_mentions"] = body.get("allowed_mentions")
        return _json_response(message)

    def _edit_message(self, body: Json, channel_id: str, message_id: str) -> Any:
        message = self.messages.get(message_id)
        refusal = rules.edit_refusal(message, channel_id, self.bot["id"])
        return self._checked_update(message_id, body, refusal)

    def _checked_update(
        self, message_id: str, body: Json, refusal: rules.Refusal | None = None
    ) -> Any:
        refusal = refusal or rules.content_refusal(body)
        return self._refuse(refusal) if refusal is not None else self._update(message_id, body)

    # Message history ---------------------------------------------------------------------

    def _history(self, _body: Any, channel_id: str) -> Any:
        """`GET /channels/{id}/messages`: newest first, `limit` (1-100, default 50),
        `before` / `after` a message id; content withheld as on the gateway."""
        if channel_id not in self.channels and channel_id not in self.threads:
            return _json_response({"message": "Unknown Channel", "code": 10003}, 404)
        limit = max(1, min(int(self._query.get("limit") or 50), 100))
        before, after = self._query.get("before"), self._query.get("after")
        found = [
            m
            for m in self.messages_in(channel_id)
            if (before is None or int(m["id"]) < int(before))
            and (after is None or int(m["id"]) > int(after))
        ]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return _json_response([self._as_received(m) for m in found[:limit]])

    def _get_message(self, _body: Any, channel_id: str, message_id: str) -> Any:
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        return _json_response(self._as_received(message))

    async def user_thread(self, name: str, *, owner: Json | None = None) -> str:
        """A person (alice by default) opens a thread in the text channel; the client gets
        THREAD_CREATE. Returns the thread id."""
        starter = self.store_user_message(self.channel_id, name, author=owner)
        thread = self._thread(self.channel_id, starter["id"], name, (owner or self.alice)["id"])
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return str(thread["id"])

    # Forum channels -------------------------------------------------------------------

    def add_forum(self, name: str = "questions") -> str:
        """A forum channel in the guild; add it before the client connects, so that
        GUILD_CREATE lists it. Returns its id."""
        forum_id = self.next_id()
        self.channels[forum_id] = self._guild_channel(forum_id, CHANNEL_FORUM, name) | {
            "available_tags": [],
            "default_reaction_emoji": None,
            "default_sort_order": None,
            "default_forum_layout": 0,
            "flags": 0,
        }
        return forum_id

    def _guild_channel(self, channel_id: str, kind: int, name: str) -> Json:
        """A guild channel object as GUILD_CREATE lists it, placed after the others."""
        return {
            "id": channel_id,
            "type": kind,
            "guild_id": self.guild_id,
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    async def user_forum_post(
        self, forum_id: str, title: str, content: str, *, author: Json | None = None
    ) -> Json:
        """A person opens a forum post: a thread they own, whose first message has the
        thread's id, as on Discord. The client gets THREAD_CREATE, then MESSAGE_CREATE.
        Returns the thread."""
        author = author or self.alice
        thread = self._thread(forum_id, self.next_id(), title, author["id"])
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        message = self.store_user_message(thread["id"], content, author=author)
        del self.messages[message["id"]]
        message["id"] = thread["id"]
        self.messages[message["id"]] = message
        await self.dispatch("MESSAGE_CREATE", self._as_received(message))
        return thread

    def _create_thread(self, body: Json, channel_id: str, message_id: str) -> Any:
        parent = self.channels.get(channel_id)
        if parent is None or parent["type"] != CHANNEL_TEXT:
            return _json_response({"message": "Cannot execute action", "code": 50024}, 400)
        refusal = self._permission_refusal(channel_id, rules.CREATE_PUBLIC_THREADS)
        if refusal is not None:
            return self._refuse(refusal)
        thread = self._thread(
            channel_id, message_id, body["name"], self.bot["id"], body.get("auto_archive_duration")
        )
        self._pending_events.append(("THREAD_CREATE", {**thread, "newly_created": True}))
        return _json_response(thread, 201)

    def _thread(
        self,
        channel_id: str,
        message_id: str,
        name: str,
        owner_id: str,
        archive_minutes: int | None = None,
    ) -> Json:
        parent = self.channels[channel_id]
        thread: Json = {
            "id": message_id,  # Discord reuses the starter message id
            "guild_id": parent["guild_id"],
            "parent_id": channel_id,
            "owner_id": owner_id,
            "name": name,
            "type": CHANNEL_PUBLIC_THREAD,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive_minutes or 1440,
                "archive_timestamp": _now(),
                "locked": False,
            },
        }
        self.threads[message_id] = thread
        return thread

    def _open_dm(self, body: Json) -> Any:
        user = next(
            (u for u in (self.alice, self.bob) if u["id"] == str(body["recipient_id"])), None
        )
        if user is None:
            return _json_response({"message": "Unknown User", "code": 10013}, 404)
        return _json_response(self.channels[self.dm_channel(user)])

    def _put_commands(self, body: list[Json], _app: str, guild_id: str | None = None) -> Any:
        stored = [
            {
                "description": "",  # context-menu commands have none; Discord sends ""
                **command,
                "id": self.next_id(),
                "application_id": self.application_id,
                "version": "1",
                "type": command.get("type", 1),
                "default_member_permissions": None,
                "nsfw": False,
                **({"guild_id": guild_id} if guild_id else {}),
            }
            for command in body
        ]
        self.commands[guild_id or "global"] = stored
        return _json_response(stored)

    def _interaction_callback(self, body: Json, interaction_id: str, token: str) -> Any:
        state = self._interactions.get(token)
        if state is None or state["payload"]["id"] != interaction_id:
            return _json_response({"message": "Unknown interaction", "code": 10062}, 404)
        age = time.monotonic() - state["created"]
        refusal = rules.interaction_refusal(
            age, len(state["callbacks"]), self.interaction_deadline
        ) or rules.content_refusal(body.get("data"))
        if refusal is not None:
            state["refused_callbacks"] = [*state.get("refused_callbacks", []), body]
            return self._refuse(refusal)
        state["callbacks"].append(body)
        if body["type"] == RESPONSE_MODAL:
            return _json_response({"interaction": {"id": interaction_id, "type": 2}}, 200)
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        if body["type"] == RESPONSE_DEFERRED_CHANNEL_MESSAGE:
            flags |= FLAG_LOADING
        message = self._interaction_message(state, {**data, "flags": flags})
        return _json_response(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_id": message["id"],
                    "response_message_loading": bool(flags & FLAG_LOADING),
                    "response_message_ephemeral": bool(flags & FLAG_EPHEMERAL),
                },
                "resource": {"type": body["type"], "message": message},
            }
        )

    def _interaction_message(self, state: Json, body: Json) -> Json:
        """The original response or a followup, marked with the interaction it answers
        (`interaction_metadata`), as Discord marks them."""
        payload = state["payload"]
        message = self._bot_message(payload["channel_id"], body)
        metadata: Json = {
            "id": payload["id"],
            "type": payload["type"],
            "user": payload.get("user") or payload["member"]["user"],
            "authorizing_integration_owners": {},
        }
        if state["messages"]:
            metadata["original_response_message_id"] = state["messages"][0]
        else:
            message["type"] = MESSAGE_CHAT_INPUT_COMMAND
        message["interaction_metadata"] = metadata
        state["messages"].append(message["id"])
        return message

    def _interaction_state(self, token: str) -> Json | None:
        return self._interactions.get(token)

    def _edit_original(self, body: Json, _app: str, token: str) -> Any:
        state = self._interaction_state(token)
        if state is None or not state["messages"]:
            return _json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        return self._checked_update(state["messages"][0], body)

    def _followup(self, body: Json, _app: str, token: str) -> Any:
        state = self._interaction_state(token)
        if state is None:
            return _json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        refusal = rules.content_refusal(body)
        if refusal is not None:
            return self._refuse(refusal)
        return _json_response(self._interaction_message(state, body))

    def _edit_followup(self, body: Json, _app: str, token: str, message_id: str) -> Any:
        state = self._interaction_state(token)
        if state is None or message_id not in state["messages"]:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        return self._checked_update(message_id, body)

    # Gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        try:
            await ws.send_json({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                await self._gateway_op(ws, json.loads(frame.data))
        finally:
            self._sockets.remove(ws)
            self._shards.pop(ws, None)
        return ws

    async def _gateway_op(self, ws: web.WebSocketResponse, payload: Json) -> None:
        op = payload.get("op")
        if op == 1:  # heartbeat
            await ws.send_json({"op": 11})
        elif op == 2:  # identify
            self.identifies.append(payload["d"])
            shard = payload["d"].get("shard") or [0, 1]
            self._shards[ws] = (int(shard[0]), int(shard[1]))
            asks_content = int(payload["d"].get("intents", 0)) & MESSAGE_CONTENT_INTENT
            if asks_content and not self._message_content_enabled:
                await ws.close(code=CLOSE_DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
                return
            await self._send_ready(ws)
        else:
            _log.debug("fake discord ignores gateway op %s", op)

    async def _send_ready(self, ws: web.WebSocketResponse) -> None:
        self._seq += 1
        shard = self._shards.get(ws, (0, 1))
        has_guild = self._shard_owns(shard, self.guild_id)
        ready = {
            "v": 10,
            "user": self.bot,
            "shard": list(shard),
            "guilds": [{"id": self.guild_id, "unavailable": True}] if has_guild else [],
            "session_id": "fake-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [],
        }
        await ws.send_json({"op": 0, "t": "READY", "s": self._seq, "d": ready})
        if has_guild:
            self._seq += 1
            guild = self._guild_payload()
            await ws.send_json({"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": guild})
        await self._notify()
