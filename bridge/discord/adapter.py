"""The Discord adapter: a discord.py client that turns DMs, mentions, thread messages and
slash commands into `Question`s for the relay, each answered through a Discord surface.

Where conversations live:
- DMs: one conversation per DM channel; `reset` (or `/reset`) starts a fresh one.
- Servers: a mention opens a public thread from the question and the answer goes there;
  later messages in a thread the bot owns continue it (without the privileged
  message-content intent, Discord withholds their text unless they mention the bot).
  Where the bot may not create threads it answers with a plain reply instead, and a
  reply to any message of that answer continues the conversation.
- `/ask question:` answers in place (in a thread or DM it continues that conversation;
  in a channel, a reply to the answer does).

A reply finds its conversation through the store's record of every answer message,
so it works across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bridge.config import Settings
from bridge.context import QuestionContext
from bridge.discord.ask_message import ask_menu
from bridge.discord.connect import api_base, resolve_gateway, use_gateway
from bridge.discord.context import message_context, reply_chain, thread_history
from bridge.discord.filters import is_reset_command, strip_bot_mention, thread_name
from bridge.discord.interactions import DiscordInteractions
from bridge.discord.pacing import GlobalBudget
from bridge.discord.private import PrivateSurface, Sharing, share_button_type
from bridge.discord.routing import DM_WORKSPACE, PLATFORM, AnswerIndex, dm_key, thread_key
from bridge.discord.surface import (
    NO_MENTIONS,
    ChannelSurface,
    InteractionSurface,
    describe_failure,
    guarded,
    surface_limits,
)
from bridge.discord.tracing import metrics_trace
from bridge.errors import BridgeError, ConfigError, PlatformError
from bridge.feedback import FeedbackService, Handoffs
from bridge.model import Question, ThreadKey
from bridge.pools import PoolSizes, observe_pool_waits, pool_connector
from bridge.private import ShareBook, private_key
from bridge.relay import Outcome, Relay
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

# discord.py waits this long after the last GUILD_CREATE before `on_ready` (its default).
GUILD_READY_TIMEOUT = 2.0
# Login, gateway handshake and guild streaming normally take a few seconds.
READY_TIMEOUT = 60.0
# A 429 asking us to wait longer than this raises instead of stalling an answer; the
# renderer then skips intermediate edits. discord.py's minimum for this knob is 30 s.
MAX_RATE_LIMIT_WAIT = 30.0
# Threads without activity archive after a day (Discord's usual choice).
THREAD_ARCHIVE_MINUTES = 1440
# Gateway close code: the bot is in more than 2,500 servers per shard.
CLOSE_SHARDING_REQUIRED = 4011
PERSON_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)

DMS_DISABLED_TEXT = (
    "Sorry, I don't answer direct messages here. Mention me in a server channel or use /ask."
)
RESET_DONE_TEXT = "Okay — your next question starts a new conversation."
NOTHING_TO_RESET_TEXT = (
    "There is no conversation to reset here: every mention in a channel starts a new "
    "thread. Use /reset inside a thread or in a DM."
)
ASK_DESCRIPTION = "Ask the assistant a question"
ASK_ABOUT_TEXT = "On it — the answer appears with the message."
RESET_DESCRIPTION = "Start a new conversation in this DM or thread"


def build_intents(settings: Settings) -> discord.Intents:
    """Only what the bridge uses; message content is privileged and opt-in."""
    intents = discord.Intents.none()
    intents.guilds = True  # thread and channel cache, THREAD_CREATE
    intents.guild_messages = True  # mentions and thread messages
    intents.dm_messages = True
    intents.message_content = settings.discord_message_content
    return intents


def is_person_message(message: discord.Message) -> bool:
    """Ignore bots (this one included), webhooks and system messages (joins, pins,
    "thread created"), so the bot never answers itself or another bot."""
    return (
        not message.author.bot
        and message.webhook_id is None
        and message.type in PERSON_MESSAGE_TYPES
    )


class _Forwarding:
    """Forwards the two events the adapter handles (mixed into a discord.py client)."""

    def __init__(
        self,
        *,
        on_ready: Callable[[], None],
        on_message: Callable[[discord.Message], Awaitable[None]],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._ready_callback = on_ready
        self._message_callback = on_message

    async def on_ready(self) -> None:
        self._ready_callback()

    async def on_message(self, message: discord.Message) -> None:
        await self._message_callback(message)


class _Client(_Forwarding, discord.Client):
    """One gateway connection: every server of a bot below Discord's sharding limit."""


class _ShardedClient(_Forwarding, discord.AutoShardedClient):
    """DISCORD_SHARD_COUNT shards (all, or DISCORD_SHARD_IDS) over one client: required
    above 2,500 servers; several processes can split the shards between them."""


def build_client(settings: Settings, **options: Any) -> discord.Client:
    """A plain client, or a sharded one when DISCORD_SHARD_COUNT is set."""
    if settings.discord_shard_count is None:
        return _Client(**options)
    shard_ids = list(settings.discord_shard_ids) or None
    log.info(
        "discord sharding: %d shards, this process runs %s",
        settings.discord_shard_count,
        ", ".join(map(str, shard_ids)) if shard_ids else "all",
    )
    return _ShardedClient(shard_count=settings.discord_shard_count, shard_ids=shard_ids, **options)


class DiscordAdapter:
    """Connects one bot to Discord and answers through the relay.

    Args:
        settings: DISCORD_* settings (token, API/gateway overrides, intents, DMs).
        relay: answers the questions.
        guild_ready_timeout: seconds discord.py waits for more guilds before it is
            ready; tests against the one-guild fake lower it.
        feedback, handoffs: with both, finished answers get 👍/👎 (and "Talk to a
            person" in servers where a hand-off role is configured) and presses are
            handled, also on answers posted before a restart.
    """

    name = "discord"

    def __init__(
        self,
        settings: Settings,
        relay: Relay,
        *,
        guild_ready_timeout: float = GUILD_READY_TIMEOUT,
        feedback: FeedbackService | None = None,
        handoffs: Handoffs | None = None,
    ) -> None:
        self._settings = settings
        self._relay = relay
        self._limits = surface_limits(settings)
        self._answers = AnswerIndex()
        self._typing = TaskOwner("discord typing")
        self._ready_event = asyncio.Event()
        # The bridge never joins voice; discord.py's "PyNaCl/davey missing" warnings
        # would only alarm operators.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        self._client = build_client(
            settings,
            on_ready=self._ready_event.set,
            on_message=self.handle_message,
            intents=build_intents(settings),
            allowed_mentions=NO_MENTIONS,
            # Its own pool, sized like Slack's (discord.py's default holds 100).
            connector=pool_connector(
                PoolSizes.for_concurrency(settings.bridge_max_concurrency).platform
            ),
            http_trace=GlobalBudget().install(observe_pool_waits(metrics_trace(), PLATFORM)),
            guild_ready_timeout=guild_ready_timeout,
            max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT,
        )
        self._sharing = Sharing(ShareBook(), self._limits)
        self._client.add_dynamic_items(share_button_type(self._sharing.share))
        self._tree = app_commands.CommandTree(self._client)
        self._register_commands()
        self._buttons = TaskOwner("discord feedback buttons")
        self._interactions: DiscordInteractions | None = None
        if feedback is not None and handoffs is not None:
            self._interactions = DiscordInteractions(feedback, handoffs)
            self._interactions.install(self._client)
        self._connection: asyncio.Task[None] | None = None
        self._previous_api_base: str | None = None
        self._stopped = False

    # Lifecycle -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._client.is_ready() and not self._client.is_closed()

    async def start(self) -> None:
        """Log in, sync slash commands, connect the gateway; return once ready.

        Raises:
            ConfigError: missing/rejected token, or the message-content intent requested
                but not enabled in the Developer Portal.
            PlatformError: the gateway did not become ready in time.
        """
        token = self._settings.discord_token
        if token is None:
            raise ConfigError("DISCORD_TOKEN is not set")
        self._previous_api_base = discord.http.Route.BASE
        discord.http.Route.BASE = api_base(self._settings)
        try:
            await self._login(token.get_secret_value())
            gateway = await resolve_gateway(self._settings, self._client.http)
            if gateway is not None:
                use_gateway(self._client, gateway)
            await self._sync_commands()
            self._connection = asyncio.create_task(
                self._client.connect(reconnect=True), name="discord-gateway"
            )
            await self._wait_until_ready(self._connection)
        except BaseException:
            await self.stop()
            raise
        self._connection.add_done_callback(_log_connection_end)
        user = self._client.user
        log.info("discord connected as %s (id %s)", user, user.id if user else "?")

    async def _login(self, token: str) -> None:
        try:
            await self._client.login(token)
        except discord.LoginFailure as exc:
            raise ConfigError(
                "DISCORD_TOKEN was rejected by Discord; copy a fresh one from the "
                "Developer Portal (Bot → Reset Token)"
            ) from exc

    async def _wait_until_ready(self, connection: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self._ready_event.wait())
        done, _pending = await asyncio.wait(
            {ready, connection}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            return
        ready.cancel()
        if connection not in done:
            raise PlatformError(f"Discord gateway was not ready after {READY_TIMEOUT:.0f} s")
        error = connection.exception()
        if isinstance(error, discord.ConnectionClosed) and error.code == CLOSE_SHARDING_REQUIRED:
            raise ConfigError(
                "Discord requires sharding for this bot (it is in too many servers): set "
                "DISCORD_SHARD_COUNT, e.g. to one shard per 1,000 servers (docs/discord.md)"
            ) from error
        if isinstance(error, discord.PrivilegedIntentsRequired):
            raise ConfigError(
                "DISCORD_MESSAGE_CONTENT=true but the Message Content Intent is not enabled "
                "for this bot (Developer Portal → Bot → Privileged Gateway Intents)"
            ) from error
        raise PlatformError(f"Discord gateway connection ended: {error!r}") from error

    async def stop(self) -> None:
        """Close the gateway and HTTP session; put discord.py's REST base back."""
        if self._stopped:
            return
        self._stopped = True
        await self._client.close()
        if self._connection is not None:
            await asyncio.wait({self._connection})
        await self._typing.stop()
        await self._buttons.stop()
        if self._previous_api_base is not None:
            discord.http.Route.BASE = self._previous_api_base

    async def edit_message(
        self, channel: str, message_id: str, text: str, *, workspace: str = ""
    ) -> None:
        """Edit one of the bot's earlier messages (crash recovery, shutdown); one bot
        token serves every guild, so `workspace` is not needed."""
        messageable = self._client.get_partial_messageable(int(channel))
        message = messageable.get_partial_message(int(message_id))
        await guarded(message.edit(content=text, allowed_mentions=NO_MENTIONS))

    # Slash commands --------------------------------------------------------------------

    def _register_commands(self) -> None:
        @self._tree.command(name="ask", description=ASK_DESCRIPTION)
        @app_commands.describe(
            question="What do you want to know?", private="Only you see the answer"
        )
        async def ask(
            interaction: discord.Interaction, question: str, private: bool = False
        ) -> None:
            await self.handle_ask(interaction, question, private=private)

        @self._tree.command(name="reset", description=RESET_DESCRIPTION)
        async def reset(interaction: discord.Interaction) -> None:
            await self.handle_reset(interaction)

        self._tree.add_command(ask_menu(self.handle_ask_about))

    async def _sync_commands(self) -> None:
        """Register /ask and /reset: in DISCORD_GUILD_ID at once, or globally (Discord
        may take up to an hour to show global commands everywhere)."""
        guild_id = self._settings.discord_guild_id
        try:
            if guild_id is not None:
                guild = discord.Object(id=guild_id)
                self._tree.copy_global_to(guild=guild)
                synced = await self._tree.sync(guild=guild)
            else:
                synced = await self._tree.sync()
        except discord.HTTPException as exc:
            log.warning(
                "slash commands not registered (%s); mentions and DMs still work",
                describe_failure(exc.status, exc.code),
            )
            return
        log.info(
            "slash commands synced %s: %s",
            f"to guild {guild_id}" if guild_id is not None else "globally",
            ", ".join(f"/{command.name}" for command in synced),
        )

    async def handle_ask(
        self, interaction: discord.Interaction, question: str, *, private: bool = False
    ) -> None:
        """`/ask`: acknowledge at once ("thinking…"), then answer in the response; with
        `private`, only the asker sees it (a conversation of its own, see bridge.private)."""
        key = self._interaction_key(interaction)
        if key is None:
            await self._tell(interaction, DMS_DISABLED_TEXT)
            return
        try:
            await guarded(interaction.response.defer(thinking=True, ephemeral=private))
        except BridgeError as exc:
            log.warning("could not acknowledge /ask: %s", exc)
            return
        surface: InteractionSurface
        if private:
            key = private_key(PLATFORM, key.workspace, key.channel, str(interaction.id))
            surface = PrivateSurface(interaction, self._limits, self._sharing.book)
        else:
            surface = InteractionSurface(
                interaction, self._limits, on_post=self._remembering(key, interaction.channel)
            )
        self._submit(
            Question(
                thread=key,
                user_id=str(interaction.user.id),
                text=question,
                event_id=str(interaction.id),
                is_dm=interaction.guild_id is None,
            ),
            surface,
        )

    async def handle_ask_about(
        self, interaction: discord.Interaction, message: discord.Message, text: str
    ) -> None:
        """ "Ask bot" submitted: answer in the message's thread, or as a reply to it, with
        the message as context."""
        key = self._interaction_key(interaction)
        me = self._client.user
        if key is None or me is None:
            await self._tell(interaction, DMS_DISABLED_TEXT)
            return
        channel = interaction.channel if isinstance(interaction.channel, discord.Thread) else None
        await self._tell(interaction, ASK_ABOUT_TEXT)
        surface = ChannelSurface(
            message.channel,
            self._limits,
            reply_to=None if channel is not None else message,
            on_post=self._remembering(key, message.channel),
        )
        question = Question(
            thread=key,
            user_id=str(interaction.user.id),
            text=text,
            event_id=str(interaction.id),
            is_dm=interaction.guild_id is None,
            context=message_context(message, me.id),
        )
        self._submit(question, surface)

    async def handle_reset(self, interaction: discord.Interaction) -> None:
        """`/reset`: forget this DM's or thread's conversation."""
        key = self._interaction_key(interaction)
        if key is None:
            await self._tell(interaction, DMS_DISABLED_TEXT)
            return
        if interaction.guild_id is not None and not isinstance(interaction.channel, discord.Thread):
            await self._tell(interaction, NOTHING_TO_RESET_TEXT)
            return
        await self._relay.reset(key)
        await self._tell(interaction, RESET_DONE_TEXT)

    @staticmethod
    async def _tell(interaction: discord.Interaction, text: str) -> None:
        """Answer a command with a notice only its user sees; failures (an expired or
        already answered interaction) are logged, not raised into discord.py."""
        try:
            await guarded(
                interaction.response.send_message(
                    text, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            )
        except BridgeError as exc:
            log.warning("could not answer a command: %s", exc)

    def _interaction_key(self, interaction: discord.Interaction) -> ThreadKey | None:
        """The conversation a command belongs to; None for a DM when DMs are off."""
        channel = interaction.channel
        channel_id = interaction.channel_id or 0
        if interaction.guild_id is None:
            return dm_key(channel_id) if self._settings.discord_allow_dms else None
        if isinstance(channel, discord.Thread):
            return thread_key(interaction.guild_id, channel.parent_id, channel.id)
        return thread_key(interaction.guild_id, channel_id, interaction.id)

    # Messages --------------------------------------------------------------------------

    async def handle_message(self, message: discord.Message) -> None:
        """Route one gateway message; platform refusals are logged, never raised."""
        if not is_person_message(message):
            return
        try:
            if isinstance(message.channel, discord.DMChannel):
                await self._on_direct_message(message)
            elif message.guild is not None:
                await self._on_guild_message(message, message.guild)
            else:
                # A guild discord.py has not cached: never mistake it for a DM, which
                # would skip the guild and channel allow-lists.
                log.info("discord message %s ignored: its server is not available", message.id)
        except BridgeError as exc:
            log.warning("discord message %s not handled: %s", message.id, exc)

    async def _on_direct_message(self, message: discord.Message) -> None:
        if not self._settings.discord_allow_dms:
            await self._say(message.channel, DMS_DISABLED_TEXT)
            return
        key = dm_key(message.channel.id)
        text = message.content.strip()
        if is_reset_command(text):
            await self._relay.reset(key)
            await self._say(message.channel, RESET_DONE_TEXT)
            return
        self._submit(
            self._question(message, key, text), ChannelSurface(message.channel, self._limits)
        )

    async def _on_guild_message(self, message: discord.Message, guild: discord.Guild) -> None:
        me = self._client.user
        assert me is not None  # set at login, before any message can arrive
        mentioned = any(user.id == me.id for user in message.mentions)
        text = strip_bot_mention(message.content, me.id)
        if not text and not mentioned:
            return  # content withheld (no message-content intent) and not addressed to us
        thread = await self._thread_of(message.channel)
        if thread is not None:
            key = thread_key(guild.id, thread.parent_id, thread.id)
            if thread.owner_id == me.id or mentioned or await self._auto_thread(message, key):
                # Called into someone else's thread: its history goes with the question.
                joined = (
                    thread_history(thread, message, me.id) if thread.owner_id != me.id else None
                )
                await self._on_thread_message(message, key, thread, text, joined)
            return
        answered = self._replied_answer(message, me.id)
        if answered is not None:
            key = await self._conversation_of(str(answered.id), guild.id, message.channel.id)
            self._reply_in_channel(message, key, text)
        elif mentioned or self._relay.answers_everything(
            PLATFORM, str(guild.id), str(message.channel.id)
        ):
            await self._answer_in_new_thread(message, guild, text)

    async def _auto_thread(self, message: discord.Message, key: ThreadKey) -> bool:
        """In an auto-answer forum (or channel), a thread someone else opened is answered:
        its first message (a forum post: the message id is the thread id), and later
        messages once the bot answers there."""
        if not self._relay.answers_everything(PLATFORM, key.workspace, key.channel):
            return False
        return str(message.id) == key.thread or await self._relay.knows_thread(key)

    async def _thread_of(self, channel: discord.abc.Messageable) -> discord.Thread | None:
        """The thread a server message was posted in; None for a plain channel.

        discord.py caches only active threads (GUILD_CREATE lists those, archiving drops
        one), so a message in a thread that was archived — the usual way back into a
        conversation a day later, or after a restart — arrives with a bare
        `PartialMessageable`. Only then ask Discord what the channel is.
        """
        if isinstance(channel, discord.Thread):
            return channel
        if not isinstance(channel, discord.PartialMessageable):
            return None
        try:
            fetched = await guarded(self._client.fetch_channel(channel.id))
        except BridgeError as exc:
            log.warning("cannot look up channel %s (%s); treating it as a channel", channel.id, exc)
            return None
        return fetched if isinstance(fetched, discord.Thread) else None

    async def _on_thread_message(
        self,
        message: discord.Message,
        key: ThreadKey,
        thread: discord.Thread,
        text: str,
        context: QuestionContext | None = None,
    ) -> None:
        """Continue the thread's conversation (or reset it)."""
        if is_reset_command(text):
            await self._relay.reset(key)
            await self._say(thread, RESET_DONE_TEXT)
            return
        question = self._question(message, key, text, context)
        self._submit(question, ChannelSurface(thread, self._limits))

    @staticmethod
    def _replied_answer(message: discord.Message, bot_id: int) -> discord.Message | None:
        """The bot's answer this message replies to, if it is such a reply."""
        reference = message.reference
        resolved = reference.resolved if reference is not None else None
        if isinstance(resolved, discord.Message) and resolved.author.id == bot_id:
            return resolved
        return None

    async def _conversation_of(self, answer_id: str, guild_id: int, channel_id: int) -> ThreadKey:
        """The conversation a reply to the bot's plain-channel answer continues.

        This process's memory knows each part of an answer as soon as it is posted; the
        store knows every part of every answer that ended, also from before a restart.
        An answer neither knows (a refusal from an earlier process) starts a
        conversation of its own.
        """
        known = self._answers.get(answer_id) or await self._relay.thread_of_reply(
            PLATFORM, answer_id
        )
        return known or thread_key(guild_id, channel_id, answer_id)

    async def _answer_in_new_thread(
        self, message: discord.Message, guild: discord.Guild, text: str
    ) -> None:
        """Open a thread named after the question and answer there; fall back to a plain
        reply where the bot may not create threads (or for an empty or not-allowed
        question, which only gets a hint or a refusal — no thread for either)."""
        channel_key = thread_key(guild.id, message.channel.id, message.id)
        me = self._client.user
        chain = reply_chain(message, me.id) if message.reference and me is not None else None
        if not text or not self._relay.allows(self._question(message, channel_key, text)):
            self._reply_in_channel(message, channel_key, text, chain)
            return
        try:
            thread = await guarded(
                message.create_thread(
                    name=thread_name(text), auto_archive_duration=THREAD_ARCHIVE_MINUTES
                )
            )
        except PlatformError as exc:
            log.warning(
                "cannot open a thread in channel %s (%s); answering with a plain reply",
                message.channel.id,
                exc,
            )
            self._reply_in_channel(message, channel_key, text, chain)
            return
        key = thread_key(guild.id, message.channel.id, thread.id)
        question = self._question(message, key, text, chain)
        self._submit(question, ChannelSurface(thread, self._limits))

    def _reply_in_channel(
        self,
        message: discord.Message,
        key: ThreadKey,
        text: str,
        context: QuestionContext | None = None,
    ) -> None:
        surface = ChannelSurface(
            message.channel,
            self._limits,
            reply_to=message,
            on_post=self._remembering(key, message.channel),
        )
        self._submit(self._question(message, key, text, context), surface)

    def _remembering(self, key: ThreadKey, channel: object) -> Callable[[str], None] | None:
        """Record answer ids for reply-continuation, where the channel is not itself the
        conversation (plain channels; threads and DMs need no memory)."""
        if key.workspace == DM_WORKSPACE or isinstance(channel, discord.Thread):
            return None
        return lambda message_id: self._answers.remember(message_id, key)

    @staticmethod
    def _question(
        message: discord.Message,
        key: ThreadKey,
        text: str,
        context: QuestionContext | None = None,
    ) -> Question:
        return Question(
            thread=key,
            user_id=str(message.author.id),
            text=text,
            event_id=str(message.id),
            is_dm=message.guild is None,
            context=context,
        )

    def _submit(self, question: Question, surface: ChannelSurface | InteractionSurface) -> None:
        if isinstance(surface, ChannelSurface):
            surface.start_typing(self._typing)
        task = self._relay.submit(question, surface)
        if isinstance(surface, ChannelSurface):
            # The relay may never touch the surface (duplicate event): stop typing anyway.
            task.add_done_callback(lambda _task: surface.stop_typing())
        if self._interactions is not None:
            task.add_done_callback(lambda done: self._add_buttons(done, question, surface))

    def _add_buttons(
        self,
        answer: asyncio.Task[Outcome],
        question: Question,
        surface: ChannelSurface | InteractionSurface,
    ) -> None:
        """Put 👍/👎 under a finished answer, never under errors, refusals or
        interrupted replies."""
        if answer.cancelled() or answer.exception() is not None or answer.result() != "done":
            return
        assert self._interactions is not None
        view = self._interactions.view_for(question)

        async def add() -> None:
            try:
                await surface.add_buttons(view)
            except BridgeError as exc:
                log.warning("could not add feedback buttons: %s", exc)

        self._buttons.spawn(add(), name="discord-feedback-buttons")

    async def _say(self, channel: discord.abc.Messageable, text: str) -> None:
        """A short notice (reset done, DMs off); failures are logged, not raised."""
        try:
            await guarded(channel.send(text, allowed_mentions=NO_MENTIONS))
        except BridgeError as exc:
            log.warning("could not send a notice: %s", exc)


def _log_connection_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("discord gateway connection ended: %r", error)
