"""Where one answer is drawn on Discord: a channel/thread/DM message chain, or the
response to a slash-command interaction.

Every send and edit passes `allowed_mentions=none` (the client default is the same), so
no backend or user text can ping; link previews are suppressed (`<url>` links in the
sources block plus the SUPPRESS_EMBEDS flag), so the bot never needs Embed Links.
discord.py absorbs short 429s itself; what it raises is mapped here, in one place, to
`PlatformRateLimited` / `PlatformError`. Each request waits its turn in the bot's global
budget with the priority of its kind (`bridge.discord.pacing`); typing is dropped first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp
import discord

from bridge.backends.events import Source
from bridge.config import Settings
from bridge.discord.pacing import BudgetDropped, turn
from bridge.errors import BridgeError, PlatformError, PlatformRateLimited, PlatformUnreachable
from bridge.pacing import Priority, priority_of
from bridge.safety import markdown_sources_block, neutralize_discord
from bridge.surface import Draft, EditKind, SurfaceLimits
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

T = TypeVar("T")

# Discord rejects message content over 2,000 characters.
MESSAGE_CHAR_LIMIT = 2000
# Discord shows "is typing…" for about 10 s per trigger; refresh a little earlier.
TYPING_REFRESH_SECONDS = 8.0
UNREACHABLE_RETRY_SECONDS = 1.0  # after a connection error, try the reply again this soon
NO_MENTIONS = discord.AllowedMentions.none()
# Discord JSON error codes worth a specific sentence.
CODE_CANNOT_DM = 50007
CODE_MISSING_ACCESS = 50001
CODE_MISSING_PERMISSIONS = 50013


def surface_limits(settings: Settings) -> SurfaceLimits:
    """Discord limits for the renderer.

    Edits are rate-limited per channel (about 5 per 5 s shared by every reply in it),
    so BRIDGE_EDIT_INTERVAL (default 1 s) should stay ≥ 1 s in production; tests lower it.
    """
    return SurfaceLimits(
        max_message_chars=MESSAGE_CHAR_LIMIT, min_edit_interval=settings.bridge_edit_interval
    )


def describe_failure(status: int, code: int) -> str:
    """One sentence saying why Discord refused a call, for logs and the turn record."""
    if code == CODE_CANNOT_DM:
        return "Discord will not deliver direct messages to this user (DMs closed or blocked)"
    if status == 403 or code in (CODE_MISSING_ACCESS, CODE_MISSING_PERMISSIONS):
        return f"the bot lacks a permission in this channel (Discord code {code})"
    if status == 404:
        return f"the channel or message no longer exists (Discord code {code})"
    return f"Discord refused the call (HTTP {status}, code {code})"


def to_bridge_error(exc: discord.DiscordException) -> BridgeError:
    """Map a discord.py failure to the bridge's platform errors."""
    if isinstance(exc, discord.RateLimited):
        return PlatformRateLimited(exc.retry_after, "discord")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:  # a 429 discord.py did not retry (no `Via`: Cloudflare)
            retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
            return PlatformRateLimited(retry_after, "discord")
        return PlatformError(describe_failure(exc.status, exc.code))
    return PlatformError(f"Discord client error: {type(exc).__name__}")


async def guarded(call: Awaitable[T], *, repeatable: bool = True) -> T:
    """Await a discord.py call, re-raising its failures as bridge errors.

    A network error is transient (`PlatformUnreachable`, retried like a 429) when the call
    is `repeatable` (edits) or could not have reached Discord (no connection was made);
    a new message whose request may have arrived is not sent twice.
    """
    try:
        return await call
    except (discord.HTTPException, discord.RateLimited) as exc:
        raise to_bridge_error(exc) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        cause = type(exc).__name__
        if repeatable or isinstance(exc, aiohttp.ClientConnectorError):
            raise PlatformUnreachable(UNREACHABLE_RETRY_SECONDS, "discord", cause) from exc
        raise PlatformError(f"Discord did not confirm a new message ({cause})") from exc


class Typing:
    """Shows "bot is typing…" in a channel until `stop()`; failures only get logged
    (a missing typing indicator must never cost an answer)."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self._channel = channel
        self._task: asyncio.Task[None] | None = None

    def start(self, tasks: TaskOwner) -> None:
        """Run the indicator as a task of `tasks` (the adapter's, ended by its stop)."""
        if self._task is None:
            self._task = tasks.spawn(self._run(), name="discord-typing")

    async def _run(self) -> None:
        """Refresh "typing…" while the budget has a token free; the first thing dropped
        when the bot is busy (`bridge.discord.pacing`)."""
        try:
            with turn(Priority.PROGRESS, droppable=True):
                while True:
                    with contextlib.suppress(BudgetDropped):
                        await self._channel.typing()
                    await asyncio.sleep(TYPING_REFRESH_SECONDS)
        except (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("typing indicator stopped: %s", exc)

    def stop(self) -> None:
        """Synchronous, so it can run from a task's done-callback."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()


class _DiscordText:
    """What both surfaces share: neutralizing and the sources block."""

    limits: SurfaceLimits

    def neutralize(self, text: str) -> str:
        return neutralize_discord(text)

    def render_sources(self, sources: Sequence[Source]) -> str:
        return markdown_sources_block(sources)


class ChannelSurface(_DiscordText):
    """An answer as messages in a text channel, thread or DM.

    Args:
        channel: where to post.
        limits: from `surface_limits`.
        reply_to: the question, referenced by the first message (plain-reply mode).
        on_post: told each posted message id (the adapter maps answers to threads).

    "Typing…" is shown from `start_typing` until the first edit or `close`.
    """

    def __init__(
        self,
        channel: discord.abc.Messageable,
        limits: SurfaceLimits,
        *,
        reply_to: discord.Message | None = None,
        on_post: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits
        self._channel = channel
        self._reply_to = reply_to
        self._on_post = on_post
        self._typing = Typing(channel)
        self._posted: list[str] = []

    @property
    def channel(self) -> str:
        return str(self._channel.id)  # type: ignore[attr-defined]

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        reference = None
        if self._reply_to is not None:
            reference = self._reply_to.to_reference(fail_if_not_exists=False)
            self._reply_to = None  # only the first message is a reply
        with turn(_post_priority(kind)):
            sent = await guarded(
                self._channel.send(
                    text,
                    allowed_mentions=NO_MENTIONS,
                    suppress_embeds=True,
                    reference=reference,  # type: ignore[arg-type]
                    mention_author=False if reference is not None else None,
                ),
                repeatable=False,
            )
        self._posted.append(str(sent.id))
        if self._on_post is not None:
            self._on_post(str(sent.id))
        return str(sent.id)

    async def add_buttons(self, view: discord.ui.View) -> None:
        """Put `view` under the answer's last message (the feedback buttons)."""
        if self._posted:
            message = self._channel.get_partial_message(int(self._posted[-1]))  # type: ignore[attr-defined]
            await guarded(message.edit(view=view))

    def start_typing(self, tasks: TaskOwner) -> None:
        self._typing.start(tasks)

    def stop_typing(self) -> None:
        self._typing.stop()

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        self._typing.stop()
        message = self._channel.get_partial_message(int(message_id))  # type: ignore[attr-defined]
        with turn(priority_of(kind)):
            await guarded(message.edit(content=text, allowed_mentions=NO_MENTIONS))

    async def close(self) -> None:
        self._typing.stop()


def _post_priority(kind: EditKind) -> Priority:
    """A placeholder is what a person sees first, so it waits like first words."""
    return Priority.FIRST_TEXT if kind is EditKind.STATUS else priority_of(kind)


class InteractionSurface(_DiscordText):
    """An answer to `/ask`: the deferred ("thinking…") original response is the first
    message; parts beyond 2,000 characters are followup messages (ephemeral too when
    the answer is private). Subclasses may add components to a message by kind."""

    def __init__(
        self,
        interaction: discord.Interaction,
        limits: SurfaceLimits,
        *,
        on_post: Callable[[str], None] | None = None,
        ephemeral: bool = False,
    ) -> None:
        self.limits = limits
        self._interaction = interaction
        self._original_id: str | None = None
        self._on_post = on_post
        self._ephemeral = ephemeral
        self._posted: list[str] = []

    @property
    def channel(self) -> str:
        return str(self._interaction.channel_id)

    def components(self, kind: EditKind) -> dict[str, discord.ui.View]:
        """Extra keyword arguments (a `view`) for a message of `kind`; none here."""
        return {}

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        interaction = self._interaction
        extra = self.components(kind)
        if self._original_id is None:
            sent = await guarded(
                interaction.edit_original_response(
                    content=text, allowed_mentions=NO_MENTIONS, **extra
                )
            )
            self._original_id = str(sent.id)
        else:
            sent = await guarded(
                interaction.followup.send(
                    text,
                    allowed_mentions=NO_MENTIONS,
                    suppress_embeds=True,
                    wait=True,
                    ephemeral=self._ephemeral,
                    **extra,
                ),
                repeatable=False,
            )
        self._posted.append(str(sent.id))
        if self._on_post is not None:
            self._on_post(str(sent.id))
        return str(sent.id)

    async def add_buttons(self, view: discord.ui.View) -> None:
        """Put `view` under the answer's last message (the feedback buttons); within the
        interaction token's 15 minutes, like every edit of this answer."""
        if not self._posted:
            return
        last = self._posted[-1]
        if last == self._original_id:
            await guarded(self._interaction.edit_original_response(view=view))
        else:
            await guarded(self._interaction.followup.edit_message(int(last), view=view))

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        interaction = self._interaction
        extra = self.components(kind)
        if message_id == self._original_id:
            await guarded(
                interaction.edit_original_response(
                    content=text, allowed_mentions=NO_MENTIONS, **extra
                )
            )
        else:
            await guarded(
                interaction.followup.edit_message(
                    int(message_id), content=text, allowed_mentions=NO_MENTIONS, **extra
                )
            )

    async def close(self) -> None:
        """Nothing to release: the interaction token simply expires."""
