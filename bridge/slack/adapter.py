"""The Slack platform adapter: slack-bolt `AsyncApp` in, relay out.

Events arrive over Socket Mode (SLACK_APP_TOKEN) or the HTTP Events API
(SLACK_SIGNING_SECRET, `http_handler` mounted at `POST /slack/events`); bolt verifies
signatures and acknowledges. Handlers stay thin: `route_event` decides, the relay answers
in a background task (so the ack is never late), and a surface draws the reply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.context import QuestionContext
from bridge.errors import BridgeError, ConfigError, PlatformError, PlatformRateLimited
from bridge.feedback import FeedbackService, Handoffs
from bridge.model import Question
from bridge.safety import neutralize_slack
from bridge.slack.api import SlackApi, SlackCallError
from bridge.slack.budget import POST, UPDATE, SlackRates, WorkspaceBudgets
from bridge.slack.events import PLATFORM, Incoming, Route, route_event
from bridge.slack.interactions import FeedbackButtons, SlackInteractions
from bridge.slack.oauth import SlackOAuth
from bridge.slack.private import PrivateAsk
from bridge.slack.shortcuts import AskAboutMessage
from bridge.slack.surface import (
    NativeStreaming,
    ReplyTarget,
    UpdateSurface,
    build_surface,
    message_fields,
)
from bridge.slack.thread_context import earlier_messages
from bridge.tasks import TaskOwner

if TYPE_CHECKING:  # the relay is handed in; importing it would pull the renderer
    from bridge.relay import Relay
    from bridge.store import Store

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
# Socket Mode connect normally takes well under a second; slack_sdk retries forever, we don't.
CONNECT_TIMEOUT_SECONDS = 30.0
# On stop, finishing replies (stopping their streams) may take this long; the relay's
# drain has already ended the answers, so this is one last platform call each.
CLOSE_REPLIES_SECONDS = 2.0
RESET_TEXT = "Okay — I've forgotten our conversation. Your next message starts a new one."
THINKING_STATUS = "is thinking…"
# Slack shows at most four suggested prompts; titles are cut short in the UI.
MAX_SUGGESTED_PROMPTS = 4
PROMPT_TITLE_CHARS = 75
# How many handled event ids are remembered to drop Slack's re-deliveries in this process.
RECENT_EVENT_IDS = 2048
# AsyncApp reads these from the environment on its own: SLACK_BOT_TOKEN makes it warn that
# the token is unused next to our client, and SLACK_CLIENT_ID/SECRET switch it to a default
# OAuth flow with file stores; OAuth mode hands it our own flow (bridge.slack.oauth).
BOLT_ENVIRONMENT = ("SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")


def _finished(answer: asyncio.Task[Any]) -> bool:
    """Whether the answer task ended as `done` (the relay's Outcome is a str enum)."""
    return not answer.cancelled() and answer.exception() is None and answer.result() == "done"


@contextmanager
def _hidden_from_bolt() -> Iterator[None]:
    """Hide BOLT_ENVIRONMENT while AsyncApp is built; everything it needs is passed in.

    The constructor is synchronous, so no other coroutine can observe the gap.
    """
    saved = {name: os.environ.pop(name) for name in BOLT_ENVIRONMENT if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class RecentEventIds:
    """A bounded memory of handled event ids.

    Best effort, per process: answers are de-duplicated by the relay's store (the
    authority, across restarts too); this also stops a re-delivered `reset` from
    confirming twice and a retried message from re-setting the assistant status.
    """

    def __init__(self, size: int = RECENT_EVENT_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, event_id: str) -> bool:
        """Remember `event_id`; False if it was already seen."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True

    def forget(self, event_id: str) -> None:
        """Handling failed: let Slack's retry of `event_id` try again."""
        self._ids.pop(event_id, None)


class SlackAdapter:
    """Slack via slack-bolt: Socket Mode and/or HTTP events, answers via the relay.

    Args:
        settings: SLACK_BOT_TOKEN is required; SLACK_APP_TOKEN enables Socket Mode,
            SLACK_SIGNING_SECRET the HTTP handler; SLACK_API_URL points at another API.
        relay: answers questions.
        session: the process' aiohttp session, reused for Web API calls.
        rates: per-workspace call budgets (tests use small ones).
        feedback, handoffs: with both, finished answers get 👍/👎 (and "Talk to a
            person" where a hand-off group is configured) and the presses are handled.
        store: where OAuth mode (SLACK_CLIENT_ID, …) keeps workspace installations.
    """

    name = "slack"

    def __init__(
        self,
        settings: Settings,
        relay: Relay,
        *,
        session: aiohttp.ClientSession | None = None,
        rates: SlackRates | None = None,
        feedback: FeedbackService | None = None,
        handoffs: Handoffs | None = None,
        store: Store | None = None,
    ) -> None:
        oauth = settings.slack_oauth_configured
        if settings.slack_bot_token is None and not oauth:
            raise ConfigError("Slack needs SLACK_BOT_TOKEN (the xoxb- Bot User OAuth Token)")
        self._settings = settings
        self._relay = relay
        base_url = settings.slack_api_url or DEFAULT_API_URL
        client = AsyncWebClient(
            token=None
            if oauth or settings.slack_bot_token is None
            else settings.slack_bot_token.get_secret_value(),
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            session=session,
        )
        self.oauth: SlackOAuth | None = None
        if oauth:
            if store is None:
                raise ConfigError("Slack OAuth mode needs the bridge's database")
            self.oauth = SlackOAuth(settings, store, client)
        tokens = self.oauth.installs.token_for if self.oauth else None
        self._api = SlackApi(client, WorkspaceBudgets(rates or SlackRates()), tokens)
        self._native = NativeStreaming(settings.slack_streaming)
        secret = settings.slack_signing_secret
        self._signing_secret = secret.get_secret_value() if secret is not None else ""
        with _hidden_from_bolt():
            self._app = AsyncApp(
                client=client,
                signing_secret=self._signing_secret,
                logger=logging.getLogger("slack_bolt"),
                name="bridge",
                oauth_flow=self.oauth.flow if self.oauth else None,
            )
        if self.oauth is not None:
            # bolt's own listeners: app_uninstalled / tokens_revoked delete the install.
            self._app.enable_token_revocation_listeners()
        self._app.event("app_mention")(self._on_message)
        self._app.event("message")(self._on_message)
        self._app.event("assistant_thread_started")(self._on_assistant_thread_started)
        self._app.event("assistant_thread_context_changed")(self._on_ignored_event)
        identity = lambda: (self._bot_user_id, self._bot_id)  # noqa: E731 (known after start)
        AskAboutMessage(self._api, self.answer_at, identity).register(self._app)
        PrivateAsk(self._api, self._relay.submit, session).register(self._app)
        self._socket: AsyncSocketModeHandler | None = None
        self._bot_user_id = ""
        self._bot_id = ""
        self._team_id = ""
        self._started = False
        self._closers = TaskOwner("slack reply closers")
        self._recent = RecentEventIds()
        self._buttons: FeedbackButtons | None = None
        if feedback is not None and handoffs is not None:
            SlackInteractions(self._app, self._api, feedback, handoffs)
            self._buttons = FeedbackButtons(self._api, handoffs)

    # PlatformAdapter -------------------------------------------------------------------

    async def start(self) -> None:
        """Learn the bot's identity (auth.test); with SLACK_APP_TOKEN, connect Socket Mode.

        Raises:
            ConfigError: Slack rejected a token (the message says where to get one).
            PlatformError: Slack could not be reached or Socket Mode did not connect.
        """
        if self.oauth is not None:  # each workspace's identity comes with its events
            self._started = True
            log.info("Slack OAuth mode: workspaces install at /slack/install")
            return
        try:
            identity = await self._api.call("auth.test")
        except SlackCallError as exc:
            raise ConfigError(
                f"Slack rejected SLACK_BOT_TOKEN ({exc.error}): copy the Bot User OAuth Token "
                "(xoxb-…) from your Slack app's OAuth & Permissions page; reinstall the app "
                "if it was revoked"
            ) from exc
        except PlatformRateLimited as exc:
            raise PlatformError(f"could not reach Slack: {exc}") from exc
        self._bot_user_id = str(identity.get("user_id") or "")
        self._bot_id = str(identity.get("bot_id") or "")
        self._team_id = str(identity.get("team_id") or "")
        if self._settings.slack_app_token is not None:
            await self._connect_socket_mode(self._settings.slack_app_token.get_secret_value())
        self._started = True
        log.info(
            "Slack connected as %s in %s (%s)",
            self._bot_user_id,
            self._team_id,
            "Socket Mode" if self._socket else "HTTP events",
        )

    async def _connect_socket_mode(self, app_token: str) -> None:
        # Asking for the URL ourselves turns a bad app token into one clear error;
        # slack_sdk's connect() would retry it forever.
        try:
            opened = await self._api.call("apps.connections.open", token=app_token)
        except SlackCallError as exc:
            raise ConfigError(
                f"Slack rejected SLACK_APP_TOKEN ({exc.error}): create an app-level token "
                "(xapp-…) with the connections:write scope under Basic Information → "
                "App-Level Tokens, with Socket Mode turned on"
            ) from exc
        except PlatformRateLimited as exc:
            raise PlatformError(f"could not open Slack Socket Mode: {exc}") from exc
        socket = AsyncSocketModeHandler(self._app, app_token, web_client=self._api.client)
        socket.client.wss_uri = str(opened["url"])
        self._socket = socket
        try:
            await asyncio.wait_for(socket.connect_async(), CONNECT_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            await self.stop()
            raise PlatformError("could not open the Slack Socket Mode connection") from exc

    async def stop(self) -> None:
        """Close Socket Mode (if open); later HTTP events are still verified but the
        adapter reports not ready. Safe to call twice."""
        self._started = False
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close_async()
        # After the drain every answer has ended; give their streams a moment to stop.
        await self._closers.wait(CLOSE_REPLIES_SECONDS)
        await self._closers.stop()

    @property
    def ready(self) -> bool:
        if not self._started:
            return False
        if self._socket is None:
            return True
        client = self._socket.client
        session = client.current_session
        return not client.closed and session is not None and not session.closed

    async def edit_message(
        self, channel: str, message_id: str, text: str, *, workspace: str = ""
    ) -> None:
        """Replace one of the bot's messages (crash recovery); ends a stream left open.
        In OAuth mode `workspace` picks the team whose token may edit it."""
        fields = message_fields(neutralize_slack(text))
        team_id = workspace or self._team_id
        update = {"team_id": team_id, "budget": UPDATE, "channel": channel, "ts": message_id}
        try:
            await self._api.call("chat.update", **update, **fields)
        except SlackCallError as exc:
            if exc.error != "streaming_state_conflict":
                raise
            await self._api.call("chat.stopStream", team_id=team_id, channel=channel, ts=message_id)
            await self._api.call("chat.update", **update, **fields)

    # HTTP Events API -------------------------------------------------------------------

    async def http_handler(self, request: web.Request) -> web.StreamResponse:
        """`POST /slack/events`: bolt checks the signature and timestamp (401 otherwise),
        answers url_verification and acknowledges events before they are answered."""
        if not self._signing_secret:
            raise web.HTTPNotFound(text="Slack HTTP events need SLACK_SIGNING_SECRET")
        response = await self._app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    # Event handlers --------------------------------------------------------------------

    async def _on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        incoming = route_event(body, self._bot_user_id or context.bot_user_id or "")
        if incoming is None:
            return
        if not self._recent.first_time(incoming.question.event_id):
            log.info("re-delivered Slack event %s ignored", incoming.question.event_id)
            return
        try:
            await self._handle(incoming)
        except BridgeError as exc:
            self._recent.forget(incoming.question.event_id)
            log.warning("could not handle Slack event %s: %s", incoming.question.event_id, exc)

    async def _handle(self, incoming: Incoming) -> None:
        question = incoming.question
        thread = question.thread
        if incoming.route is Route.RESET:
            if not await self._relay.reset(
                thread, event_id=question.event_id, user_id=question.user_id
            ):
                return  # a re-delivered reset, already confirmed
            await self._api.call(
                "chat.postMessage",
                team_id=incoming.team_id,
                budget=POST,
                channel=thread.channel,
                thread_ts=incoming.reply_thread_ts,
                **message_fields(RESET_TEXT),
            )
            return
        if incoming.route is Route.FOLLOW_UP and not await self._relay.knows_thread(thread):
            return
        if incoming.route is Route.AUTO and not self._relay.answers_everything(
            PLATFORM, thread.workspace, thread.channel
        ):
            return
        if question.is_dm and incoming.reply_thread_ts is not None:
            await self._set_thinking(thread.channel, incoming.reply_thread_ts)
        if incoming.joins_thread and incoming.reply_thread_ts is not None:
            earlier = functools.partial(
                earlier_messages,
                self._api,
                channel=thread.channel,
                thread_ts=incoming.reply_thread_ts,
                before_ts=incoming.message_ts,
                bot_user_id=self._bot_user_id,
                bot_id=self._bot_id,
            )
            question = dataclasses.replace(question, context=QuestionContext(earlier))
        self.answer_at(
            question,
            ReplyTarget(
                team_id=incoming.team_id,
                channel=thread.channel,
                thread_ts=incoming.reply_thread_ts,
                user_id=question.user_id,
            ),
        )

    def answer_at(self, question: Question, target: ReplyTarget) -> None:
        """Answer `question` in the background, drawn at `target` (events, shortcuts)."""
        surface = build_surface(
            self._api,
            target,
            edit_interval=self._settings.bridge_edit_interval,
            native=self._native,
        )
        self._close_after(self._relay.submit(question, surface), surface, question.event_id)

    async def _set_thinking(self, channel: str, thread_ts: str) -> None:
        """Assistant threads show a "thinking" status until the reply arrives; plain DM
        threads refuse it, which is harmless."""
        try:
            await self._api.call(
                "assistant.threads.setStatus",
                channel_id=channel,
                thread_ts=thread_ts,
                status=THINKING_STATUS,
            )
        except BridgeError as exc:  # refused, rate limited or unreachable: answer anyway
            log.debug("no assistant status for %s/%s: %s", channel, thread_ts, exc)

    def _close_after(
        self, answer: asyncio.Task[Any], surface: UpdateSurface, event_id: str
    ) -> None:
        """Make sure the surface is closed (open streams stopped) however the answer
        ended, including refusals that only post; then put the feedback buttons on a
        finished answer (never on errors, refusals or interrupted replies)."""

        async def close_when_done() -> None:
            await asyncio.wait({answer})
            try:
                await surface.close()
            except BridgeError as exc:
                log.warning("could not finish a Slack reply: %s", exc)
                return
            last = surface.last_message()
            if self._buttons is not None and last is not None and _finished(answer):
                await self._buttons.attach(surface.target, *last, event_id)

        self._closers.spawn(close_when_done(), name="slack-reply-closer")

    async def _on_assistant_thread_started(self, body: dict[str, Any]) -> None:
        thread = (body.get("event") or {}).get("assistant_thread") or {}
        prompts = [
            {"title": prompt[:PROMPT_TITLE_CHARS], "message": prompt}
            for prompt in self._settings.slack_suggested_prompts[:MAX_SUGGESTED_PROMPTS]
        ]
        if not prompts or not thread.get("channel_id"):
            return
        event_id = body.get("event_id")
        if event_id and not self._recent.first_time(str(event_id)):
            return
        try:
            await self._api.call(
                "assistant.threads.setSuggestedPrompts",
                channel_id=thread["channel_id"],
                thread_ts=thread.get("thread_ts"),
                prompts=prompts,
            )
        except BridgeError as exc:
            log.warning("could not set suggested prompts: %s", exc)

    async def _on_ignored_event(self) -> None:
        """`assistant_thread_context_changed` (the channel a person views beside the
        assistant pane): the manifests no longer subscribe to it, since answers do not
        depend on it; apps created from older manifests still send it, and are
        acknowledged without a warning from bolt about an unhandled event."""
