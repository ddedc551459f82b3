"""Slack private answers: the `/ask` slash command, answered through its `response_url`.

Slack lets a `response_url` be used at most RESPONSE_URL_USES times (within 30 minutes),
so the answer is paced to that allowance rather than to an edit interval: the
"thinking…" status, the first words at once, further progress only every
PROGRESS_SECONDS and only while more than RESERVED_FOR_ENDING uses are left — the last
use always belongs to the final text (or the failure notice), so it always lands. Live
updates beyond the allowance are simply skipped (the final replaces them). Each use
with `replace_original` replaces the ephemeral message in place; an answer longer than
one Slack message (12,000 characters) spends one use per extra part, and a part shown
for the first time at the end is posted then.

The final message carries a "Share in channel" button: pressing it posts the finished
answer, sources included, in the channel, attributed to the person who pressed it (by
the name Slack sends with the press: no mention, no extra scope).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bridge.backends.events import Source
from bridge.errors import BridgeError, PlatformError, PlatformRateLimited
from bridge.model import Question
from bridge.private import (
    SHARE_GONE_TEXT,
    SHARE_LABEL,
    SHARED_NOTICE,
    AnswerCopy,
    ShareBook,
    private_key,
    shared_text,
)
from bridge.safety import neutralize_slack
from bridge.slack.api import SlackApi
from bridge.slack.events import PLATFORM
from bridge.slack.surface import MAX_MESSAGE_CHARS, message_fields, slack_sources_block
from bridge.splitting import split_message
from bridge.surface import Draft, EditKind, ReplySurface, SurfaceLimits

log = logging.getLogger(__name__)

ASK_COMMAND = "/ask"  # manifests/slack*.yaml: features.slash_commands
SHARE_ACTION_ID = "share_answer"
# Slack: "You can use a response_url up to 5 times within 30 minutes."
RESPONSE_URL_USES = 5
RESERVED_FOR_ENDING = 1
PROGRESS_SECONDS = 3.0  # between two live updates of a private answer
ENDINGS = (EditKind.FINAL, EditKind.NOTICE)

Submit = Callable[[Question, ReplySurface], object]  # Relay.submit


def share_blocks(text: str, share_id: str) -> dict[str, Any]:
    """The final message: the answer, then the Share button."""
    fields = message_fields(text)
    button = {
        "type": "button",
        "action_id": SHARE_ACTION_ID,
        "text": {"type": "plain_text", "text": SHARE_LABEL},
        "value": share_id,
    }
    fields["blocks"] = [*fields["blocks"], {"type": "actions", "elements": [button]}]
    return fields


class ResponseUrlSurface:
    """An ephemeral answer drawn through one `response_url`, within its allowance."""

    def __init__(
        self,
        response_url: str,
        *,
        channel: str,
        share_id: str,
        book: ShareBook,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = SurfaceLimits(
            max_message_chars=MAX_MESSAGE_CHARS, min_edit_interval=PROGRESS_SECONDS
        )
        self._webhook = AsyncWebhookClient(response_url, session=session)
        self._channel = channel
        self._share_id = share_id
        self._book = book
        self._clock = clock
        self._uses = 0
        self._last_use = -PROGRESS_SECONDS
        self._count = 0
        self._latest: str | None = None  # the message a replace_original use replaces
        self._unshown: set[str] = set()  # parts posted while the allowance said no
        self._copy = AnswerCopy()

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def uses(self) -> int:
        """How many times the response_url was used."""
        return self._uses

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        """A new part (the response_url never makes a call wait: `text` is the newest)."""
        self._count += 1
        message_id = f"{self._share_id}.{self._count}"
        self._copy.shown(message_id, text)
        if self._may_use(kind):
            await self._use(text, kind, replace=False)
            self._latest = message_id
        else:
            self._unshown.add(message_id)
        self._keep(kind)
        return message_id

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        self._copy.shown(message_id, text)
        self._keep(kind)
        if message_id in self._unshown:
            if self._may_use(kind):
                await self._use(text, kind, replace=False)
                self._unshown.discard(message_id)
                self._latest = message_id
            return
        if message_id != self._latest:
            log.debug("private answer part %s can no longer be replaced", message_id)
            return
        if self._may_use(kind):
            await self._use(text, kind, replace=True)

    def _may_use(self, kind: EditKind) -> bool:
        """Endings always; live text while uses beyond the reserve are left, the first
        words at once, later progress only every PROGRESS_SECONDS."""
        if kind in ENDINGS:
            return True
        if RESPONSE_URL_USES - self._uses <= RESERVED_FOR_ENDING:
            return False
        return kind is not EditKind.PROGRESS or (self._clock() - self._last_use >= PROGRESS_SECONDS)

    async def _use(self, text: str, kind: EditKind, *, replace: bool) -> None:
        fields = (
            share_blocks(text, self._share_id) if kind is EditKind.FINAL else (message_fields(text))
        )
        body = {"response_type": "ephemeral", "replace_original": replace, **fields}
        self._uses += 1
        self._last_use = self._clock()
        try:
            response = await self._webhook.send_dict(body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PlatformError(f"Slack response_url unreachable ({type(exc).__name__})") from exc
        if response.status_code == 429:
            raise PlatformRateLimited(float(response.headers.get("Retry-After", 1) or 1), PLATFORM)
        if response.status_code != 200:
            raise PlatformError(
                f"Slack refused the private reply ({response.body or response.status_code})"
            )

    def _keep(self, kind: EditKind) -> None:
        if kind is EditKind.FINAL:
            self._book.remember(self._share_id, self._copy.text)

    def neutralize(self, text: str) -> str:
        return neutralize_slack(text)

    def render_sources(self, sources: Sequence[Source]) -> str:
        return slack_sources_block(sources)

    async def close(self) -> None:
        """Nothing to end: the response_url simply expires."""


class PrivateAsk:
    """`/ask` and the Share button; `submit` answers (the relay's: a response_url
    surface needs no closing, and ephemeral replies get no feedback buttons)."""

    def __init__(
        self, api: SlackApi, submit: Submit, session: aiohttp.ClientSession | None
    ) -> None:
        self._api = api
        self._submit = submit
        self._session = session
        self.book = ShareBook()

    def register(self, app: AsyncApp) -> None:
        app.command(ASK_COMMAND)(self._on_command)
        app.action(SHARE_ACTION_ID)(self._on_share)

    async def _on_command(self, ack: Callable[..., Any], body: dict[str, Any]) -> None:
        await ack()
        response_url = str(body.get("response_url") or "")
        channel, team = str(body.get("channel_id") or ""), str(body.get("team_id") or "")
        ask_id = str(body.get("trigger_id") or "")
        if not response_url or not channel or not ask_id:
            log.warning("/ask without a response_url or channel ignored")
            return
        surface = ResponseUrlSurface(
            response_url, channel=channel, share_id=ask_id, book=self.book, session=self._session
        )
        question = Question(
            thread=private_key(PLATFORM, team, channel, ask_id),
            user_id=str(body.get("user_id") or ""),
            text=str(body.get("text") or ""),
            event_id=f"command:{ask_id}",
        )
        self._submit(question, surface)

    async def _on_share(self, ack: Callable[..., Any], body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        text = self.book.get(str(action.get("value") or ""))
        user = body.get("user") or {}
        channel = str((body.get("channel") or {}).get("id") or "")
        notice = SHARE_GONE_TEXT if text is None or not channel else SHARED_NOTICE
        if text is not None and channel:
            sharer = neutralize_slack(
                str(user.get("name") or user.get("username") or user.get("id"))
            )
            try:
                for part in split_message(shared_text(text, sharer), MAX_MESSAGE_CHARS):
                    await self._api.call(
                        "chat.postMessage",
                        team_id=str((body.get("team") or {}).get("id") or ""),
                        channel=channel,
                        unfurl_links=False,
                        unfurl_media=False,
                        **message_fields(part),
                    )
            except BridgeError as exc:
                log.warning("could not share an answer in %s: %s", channel, exc)
                notice = f"Sorry, I could not post in this channel ({exc})."
        await self._tell(str(body.get("response_url") or ""), notice)

    async def _tell(self, response_url: str, text: str) -> None:
        if not response_url:
            return
        try:
            await AsyncWebhookClient(response_url, session=self._session).send_dict(
                {"response_type": "ephemeral", "replace_original": False, "text": text}
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("could not confirm a shared answer: %s", exc)
