"""Where one answer is drawn in Slack: `chat.update` edits, or Slack's native streaming.

Two `ReplySurface`s share the Web API wrapper and the per-workspace budget:

* `UpdateSurface` posts a message with a `markdown` block and edits it with `chat.update`
  (works everywhere, ~50 edits/min per workspace).
* `StreamSurface` uses `chat.startStream` / `appendStream` / `stopStream`. A stream can
  only grow, so it holds back text that may still be replaced: the placeholder and status
  lines the renderer shows before the answer, the streaming marker (Slack draws its own
  "still writing" state), and anything not extending what was shown. Which calls are
  status lines the renderer says (`EditKind.STATUS`); nothing is guessed from text.
  When an edit rewrites streamed text, the stream is stopped and the message is fixed
  with `chat.update`. A reply falls back to `UpdateSurface` behaviour when Slack refuses
  the stream or the Tier 2 `chat.startStream` budget is spent, so answers never queue
  behind stream starts.

Calls take their turn in the workspace budget (posts: the channel's) by `Priority`, from
the kind the renderer gives each call (`bridge.pacing.priority_of`): finals, then first words, then
progress. A call sends its text only once its token is granted, read from the renderer's
`Draft` at that moment, so a waiting call never shows stale text, and one still waiting
when its answer ends is the final edit (with final priority from then on).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bridge.backends.events import Source
from bridge.errors import PlatformRateLimited
from bridge.pacing import priority_of
from bridge.safety import escape_markdown_link_text, link_target, neutralize_slack, source_label
from bridge.slack.api import SlackApi, SlackCallError
from bridge.slack.budget import POST, STREAM, STREAM_START, STREAM_STOP, UPDATE
from bridge.slack.swap import PlaceholderSwap
from bridge.surface import Draft, EditKind, SurfaceLimits

log = logging.getLogger(__name__)

# Slack `markdown` blocks hold at most 12,000 characters per message (PLATFORM-NOTES.md).
MAX_MESSAGE_CHARS = 12_000
# A markdown block may not be empty; shown only if the renderer ever posts blank text.
BLANK_TEXT = "…"
# Errors meaning "this workspace/token cannot stream in this kind of conversation", worth
# remembering. Any other refusal (e.g. `missing_recipient_user_id`, a bug on our side)
# falls back for that reply only and is logged, so it is noticed rather than hidden.
NATIVE_UNAVAILABLE_ERRORS = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "method_deprecated",
        "feature_not_enabled",
        "not_enabled",
        "team_not_allowed",
        "channel_type_not_supported",
    }
)
# chat.stopStream is retried through this many 429s (the budget waits out Retry-After):
# a stream left open locks its message against chat.update.
STOP_ATTEMPTS = 4

StreamingMode = Literal["auto", "native", "update"]


@dataclass(frozen=True)
class ReplyTarget:
    """Where a reply goes and who it is for (streaming in channels needs the recipient)."""

    team_id: str
    channel: str
    thread_ts: str | None
    user_id: str

    @property
    def conversation_kind(self) -> str:
        """`dm` or `channel`: Slack may allow streaming in one and not the other."""
        return "dm" if self.channel.startswith("D") else "channel"


def slack_sources_block(sources: Sequence[Source]) -> str:
    """The sources as a numbered list of Markdown links for a `markdown` block.

    Unlike Discord, no `<url>` wrapping: `unfurl_links` is off anyway, and `<…>` is
    Slack control syntax. The renderer does not neutralize this block, so titles are
    neutralized here (they come from the backend and may hold `<!channel>`)."""
    if not sources:
        return ""
    lines = [
        f"{number}. [{escape_markdown_link_text(neutralize_slack(source_label(source)))}]"
        f"({link_target(source.url)})"
        for number, source in enumerate(sources, start=1)
    ]
    return "\n\n**Sources**\n" + "\n".join(lines)


def message_fields(text: str) -> dict[str, Any]:
    """`text` + `markdown` block for chat.postMessage / chat.update (text is the fallback
    used in notifications)."""
    shown = text if text.strip() else BLANK_TEXT
    return {"text": shown, "blocks": [{"type": "markdown", "text": shown}]}


def _late_text(text: str, kind: EditKind, draft: Draft | None, sent: list[str]) -> dict[str, Any]:
    """`priority` and `fill` for `SlackApi.call`: the draft's kind and text as they are
    when the call may go out, or `text` and `kind` as given. The text that went out is
    appended to `sent`."""

    def fill() -> dict[str, Any]:
        sent.append(draft.text() if draft is not None else text)
        return message_fields(sent[-1])

    if draft is None:
        return {"priority": priority_of(kind), "fill": fill}
    return {"priority": lambda: priority_of(draft.kind), "fill": fill}


class NativeStreaming:
    """Decides per workspace and conversation kind whether to try native streaming
    (SLACK_STREAMING).

    `auto` remembers where Slack said streaming is unavailable, so later answers there go
    straight to `chat.update`; `native` keeps trying (and still falls back per answer);
    `update` never streams.
    """

    def __init__(self, mode: StreamingMode) -> None:
        self.mode = mode
        self._unavailable: set[tuple[str, str]] = set()

    def wanted(self, target: ReplyTarget) -> bool:
        if self.mode == "update":
            return False
        key = (target.team_id, target.conversation_kind)
        return self.mode == "native" or key not in self._unavailable

    def refused(self, target: ReplyTarget, error: str) -> None:
        """Slack refused `chat.startStream` for `target` with `error`."""
        key = (target.team_id, target.conversation_kind)
        if error not in NATIVE_UNAVAILABLE_ERRORS:
            log.warning("chat.startStream refused (%s); this reply uses chat.update", error)
        elif self.mode == "auto" and key not in self._unavailable:
            log.warning(
                "Slack streaming unavailable for %s conversations in workspace %s (%s); "
                "using chat.update",
                target.conversation_kind,
                target.team_id,
                error,
            )
            self._unavailable.add(key)


class UpdateSurface:
    """Posts one message per part and edits it with budgeted `chat.update` calls."""

    def __init__(self, api: SlackApi, target: ReplyTarget, *, edit_interval: float) -> None:
        self._api = api
        self._target = target
        self.limits = SurfaceLimits(
            max_message_chars=MAX_MESSAGE_CHARS, min_edit_interval=edit_interval
        )
        # Message ts → the text it was last given, in posting order: the feedback
        # buttons are added to the last message, which chat.update must send whole.
        self._texts: dict[str, str] = {}
        self._swap = PlaceholderSwap(api, target, patience=edit_interval, fields=message_fields)

    @property
    def channel(self) -> str:
        return self._target.channel

    @property
    def target(self) -> ReplyTarget:
        return self._target

    def last_message(self) -> tuple[str, str] | None:
        """(ts, text) of the reply's last message, once something was posted."""
        if not self._texts:
            return None
        ts = next(reversed(self._texts))
        return ts, self._texts[ts]

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        """chat.postMessage, paced per channel (placeholders, split-off parts, notices)."""
        sent: list[str] = []
        response = await self._api.call(
            "chat.postMessage",
            team_id=self._target.team_id,
            budget=POST,
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            **_late_text(text, kind, draft, sent),
        )
        self._texts[str(response["ts"])] = sent[-1] if sent else text
        if kind is EditKind.STATUS:
            self._swap.placeholders.add(str(response["ts"]))
        return str(response["ts"])

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        """chat.update from the workspace budget, with the draft's newest text; or, for an
        ending whose message still shows its placeholder while chat.update's budget is
        the bottleneck, the ending posted anew and the placeholder deleted
        (`PlaceholderSwap`), whichever budget has a token first."""
        message_id = self._swap.moved.get(message_id, message_id)
        turn = _late_text(text, kind, draft, sent := [])
        update = self._api.budgets.bucket(self._target.team_id, UPDATE)
        swap = None
        if draft is not None and message_id in self._swap.placeholders:
            swap = await self._swap.race(update, turn["priority"], draft)
        else:
            await update.acquire(turn["priority"])
        if swap is not None:
            self._texts.pop(message_id, None)
            new_id, shown = await self._swap.replace(message_id, draft, swap, self._post_ending)
            self._texts[new_id] = shown
            return
        await self._api.send(
            "chat.update",
            team_id=self._target.team_id,
            bucket=update,
            channel=self._target.channel,
            ts=message_id,
            **turn["fill"](),
        )
        self._texts[message_id] = sent[-1]
        if (draft.kind if draft is not None else kind) is not EditKind.STATUS:
            self._swap.placeholders.discard(message_id)

    async def _post_ending(self, text: str) -> str:
        return await UpdateSurface.post(self, text, kind=EditKind.FINAL)

    def neutralize(self, text: str) -> str:
        return neutralize_slack(text)

    def render_sources(self, sources: Sequence[Source]) -> str:
        return slack_sources_block(sources)

    async def close(self) -> None:
        """Nothing to end: every edit was already final on Slack's side."""


@dataclass
class _Stream:
    """One streamed message: what Slack shows (`committed`) and the latest wish (`latest`)."""

    committed: str = ""
    latest: str = ""


class StreamSurface(UpdateSurface):
    """Native Slack streaming for replies in threads, with `chat.update` as the safety net."""

    def __init__(
        self,
        api: SlackApi,
        target: ReplyTarget,
        *,
        edit_interval: float,
        native: NativeStreaming,
    ) -> None:
        super().__init__(api, target, edit_interval=edit_interval)
        self._native = native
        self._open: dict[str, _Stream] = {}

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        target = self._target
        if target.thread_ts is None or not self._native.wanted(target):
            return await super().post(text, kind=kind, draft=draft)
        await self._stop_all()  # a new part means the earlier ones are sealed
        try:
            response = await self._api.try_call(
                "chat.startStream",
                team_id=target.team_id,
                budget=STREAM_START,
                channel=target.channel,
                thread_ts=target.thread_ts,
                recipient_team_id=target.team_id or None,
                recipient_user_id=target.user_id or None,
            )
        except PlatformRateLimited:
            response = None  # the start budget is paused; this reply edits instead
        except SlackCallError as exc:
            self._native.refused(target, exc.error)
            response = None
        if response is None:
            return await super().post(text, kind=kind, draft=draft)
        message_id = str(response["ts"])
        self._open[message_id] = _Stream(latest=self._unmarked(text, kind))
        self._texts[message_id] = self._open[message_id].latest
        return message_id

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        stream = self._open.get(message_id)
        if stream is None:
            await super().edit(message_id, text, kind=kind, draft=draft)
            return
        streamed = stream.latest = self._texts[message_id] = self._unmarked(text, kind)
        if kind is EditKind.STATUS:
            return  # not answer text: a stream can only grow, so status lines wait
        if not streamed.startswith(stream.committed):
            await self._rewrite(message_id, text, kind)
            return
        suffix = streamed[len(stream.committed) :]
        if suffix:
            try:
                await self._stream_call(
                    "chat.appendStream",
                    STREAM,
                    ts=message_id,
                    markdown_text=suffix,
                    priority=priority_of(kind),
                )
            except SlackCallError as exc:
                log.warning("appendStream failed (%s); finishing with chat.update", exc.error)
                await self._rewrite(message_id, text, kind)
                return
            stream.committed = streamed

    def _unmarked(self, text: str, kind: EditKind) -> str:
        """`text` as a stream shows it: Slack draws its own "still writing" state, so the
        marker the renderer puts on live text (`SurfaceLimits`) is left off."""
        if kind in (EditKind.FIRST_WORDS, EditKind.PROGRESS):
            return text.removesuffix(self.limits.streaming_marker)
        return text

    async def close(self) -> None:
        """Stop every open stream, showing the last text it was given."""
        await self._stop_all()

    async def _stop_all(self) -> None:
        for message_id in list(self._open):
            await self._stop(message_id)

    async def _stop(self, message_id: str) -> None:
        stream = self._open[message_id]
        latest = stream.latest if stream.latest.strip() else BLANK_TEXT
        if not latest.startswith(stream.committed):
            await self._rewrite(message_id, latest, EditKind.FINAL)
            return
        suffix = latest[len(stream.committed) :]
        try:
            await self._end_stream(message_id, suffix or None)
        except SlackCallError as exc:
            log.warning("stopStream failed (%s); finishing with chat.update", exc.error)
            await self._rewrite(message_id, latest, EditKind.FINAL)
            return
        del self._open[message_id]

    async def _rewrite(self, message_id: str, text: str, kind: EditKind) -> None:
        """Leave streaming for this message: stop the stream, then replace its text."""
        self._open.pop(message_id, None)
        try:
            await self._end_stream(message_id)
        except SlackCallError as exc:
            log.debug("stopStream before rewrite failed: %s", exc.error)
        await super().edit(message_id, text, kind=kind)

    async def _end_stream(self, message_id: str, markdown_text: str | None = None) -> None:
        """chat.stopStream, waiting out 429s (each pauses the stop budget for Retry-After).

        Raises:
            SlackCallError: Slack refused, or still rate limited after STOP_ATTEMPTS.
        """
        for _ in range(STOP_ATTEMPTS):
            try:
                await self._stream_call(
                    "chat.stopStream", STREAM_STOP, ts=message_id, markdown_text=markdown_text
                )
                return
            except PlatformRateLimited:
                continue
        raise SlackCallError("chat.stopStream", "ratelimited")

    async def _stream_call(self, method: str, budget: str, **params: Any) -> Any:
        return await self._api.call(
            method,
            team_id=self._target.team_id,
            budget=budget,
            channel=self._target.channel,
            **params,
        )


def build_surface(
    api: SlackApi, target: ReplyTarget, *, edit_interval: float, native: NativeStreaming
) -> UpdateSurface:
    """Native streaming for thread replies when SLACK_STREAMING allows, else chat.update."""
    if target.thread_ts is not None and native.mode != "update":
        return StreamSurface(api, target, edit_interval=edit_interval, native=native)
    return UpdateSurface(api, target, edit_interval=edit_interval)
