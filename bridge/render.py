"""The progressive reply: a placeholder at once, throttled edits as text streams in,
follow-up messages for long answers, and an immediate final edit with the sources.

One `ReplyRenderer` draws one answer on one `ReplySurface`. The stream consumer only
records text (`append` never waits for the platform); a single background flusher per
renderer sends the latest text at most once per interval, so deltas that arrive while
an edit is in flight or the interval runs are merged, and at most one platform call is
in flight per reply. Splitting itself lives in `bridge.splitting`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from bridge.backends.events import Source
from bridge.errors import BridgeError, PlatformError, PlatformRateLimited
from bridge.safety import safe_sources
from bridge.splitting import Fence, plan_split, split_message
from bridge.surface import EditKind, ReplySurface
from bridge.tasks import TaskOwner

__all__ = [
    "FAILURE_NOTICE",
    "INTERRUPTED_NOTICE",
    "ReplyRenderer",
    "split_message",
    "status_line",
]

log = logging.getLogger(__name__)

DEFAULT_STATUS = "Thinking…"
FAILURE_NOTICE = "⚠️ The answer could not be completed: {reason}"
INTERRUPTED_NOTICE = "⚠️ This answer was interrupted by a restart — please ask again."
EMPTY_ANSWER = "_The assistant returned an empty answer._"
# A message left over when the final text needs fewer parts than were streamed (the
# authoritative text is shorter); there is no delete in ReplySurface, so it says so.
SUPERSEDED_PART = "_(The answer above is complete.)_"

MAX_EDIT_INTERVAL = 12.0  # after 429s: Slack chat.update allows ~50/min per workspace,
# shared by every answer in flight; 12 s per reply keeps a few answers within it.
BACKOFF_FACTOR = 2.0  # each 429 doubles the interval between edits of this reply
MAX_FINAL_ATTEMPTS = 6  # the final text is retried through this many 429s, then logged

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


def status_line(status: str) -> str:
    """How progress ("Thinking…", a queue notice) is drawn while no answer text exists:
    one italic line (a backend's multi-line reason text is folded onto it)."""
    return f"_{' '.join(status.split())}_"


class ReplyRenderer:
    """Draws one streamed answer on a `ReplySurface`.

    Call `start` once, then `status` / `append` as events arrive, and end with exactly one
    of `finish`, `fail` or `interrupt`; later calls are ignored. Platform trouble never
    raises out of these methods: 429s slow the edits down, a `PlatformError` stops them
    and is kept in `platform_error` for the relay to record.
    """

    def __init__(
        self,
        surface: ReplySurface,
        *,
        edit_interval: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_message: Callable[[str], None] | None = None,
        progress_stretch: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self._surface = surface
        self._limit = surface.limits.max_message_chars
        self._marker = surface.limits.streaming_marker
        self._interval = (
            surface.limits.min_edit_interval if edit_interval is None else edit_interval
        )
        self._clock = clock
        self._sleep = sleep
        self._on_message = on_message
        self._progress_stretch = progress_stretch
        self._chunks: list[str] = []
        self._status = DEFAULT_STATUS
        # What the platform shows: message ids and their current texts, in order.
        self._ids: list[str] = []
        self._shown: list[str] = []
        # Parts that a later part follows are sealed: never re-split while streaming.
        self._sealed: list[str] = []
        self._sealed_end = 0
        self._sealed_fence: Fence | None = None
        self._dirty = asyncio.Event()
        self._tasks = TaskOwner("reply renderer")
        self._flusher: asyncio.Task[None] | None = None
        self._in_call = False
        self._last_call = float("-inf")
        self._blocked_until = float("-inf")
        self._closed = False  # no more text or status is taken
        self._ended = False  # the ending (final, failure or interruption) has been drawn
        self._error: PlatformError | None = None
        self._words_shown = False  # a call showing answer text has been delivered
        # The ending's parts and kind, once known: every later call shows them.
        self._final: tuple[list[str], EditKind] | None = None

    @property
    def message_ids(self) -> list[str]:
        """Ids of the messages posted for this answer, in order."""
        return list(self._ids)

    @property
    def platform_error(self) -> PlatformError | None:
        """The refusal that stopped the edits, if the platform refused for good."""
        return self._error

    @property
    def edit_interval(self) -> float:
        """Current minimum seconds between two calls (grows after 429s)."""
        return self._interval

    async def start(self, status: str | None = None) -> None:
        """Post the placeholder right away, before the backend has said anything."""
        if status:
            self._status = status
        if not await self._call():
            self._dirty.set()
        self._ensure_flusher()

    async def status(self, text: str) -> None:
        """Show progress text in the placeholder; ignored once answer text flows."""
        if self._closed or self._chunks or not text or text == self._status:
            return
        self._status = text
        self._poke()

    async def append(self, delta: str) -> None:
        """Add answer text; it is shown at the next flush (never waits for the platform)."""
        if self._closed or not delta:
            return
        self._chunks.append(delta)
        self._poke()

    async def finish(self, text: str, sources: Iterable[Source] = ()) -> None:
        """Show the authoritative final text with its sources, immediately, then close."""
        shown = self._surface.neutralize(text)
        kept = safe_sources(sources)
        block = self._surface.render_sources(kept) if kept else ""
        if not shown.strip() and not block:
            shown = EMPTY_ANSWER
        await self._conclude(shown + block, EditKind.FINAL)

    async def fail(self, reason: str, partial_text: str | None = None) -> None:
        """End with the partial text (default: what streamed so far) and a warning line."""
        await self._end_with_notice(FAILURE_NOTICE.format(reason=reason), partial_text)

    async def interrupt(self, partial_text: str | None = None) -> None:
        """End an answer that shutdown cut short, asking the person to ask again."""
        await self._end_with_notice(INTERRUPTED_NOTICE, partial_text)

    async def _end_with_notice(self, notice: str, partial_text: str | None) -> None:
        partial = partial_text if partial_text else "".join(self._chunks)
        neutralize = self._surface.neutralize
        if partial.strip():
            await self._conclude(f"{neutralize(partial)}\n\n{neutralize(notice)}", EditKind.NOTICE)
        else:
            await self._conclude(neutralize(notice), EditKind.NOTICE)

    # Streaming ---------------------------------------------------------------------

    def _poke(self) -> None:
        self._dirty.set()
        self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        if self._flusher is None and not self._closed:
            self._flusher = self._tasks.spawn(self._flush_loop(), name="reply-flusher")

    async def _flush_loop(self) -> None:
        """Send the latest text whenever there is news and the interval has passed.

        The first answer text replaces the placeholder without waiting for the interval
        (only for a 429's Retry-After): the first words are what people wait for, and
        one early edit per reply stays well inside every platform limit. Later edits
        wait the interval times `progress_stretch()` (above 1 while the process is
        saturated, `bridge.load`), so the loop's time goes to first words and finals.
        """
        while not self._closed and self._error is None:
            await self._dirty.wait()
            first_text = bool(self._chunks) and not self._words_shown
            await self._wait_turn(
                self._blocked_until
                if first_text
                else self._last_call + self._interval * self._progress_stretch()
            )
            self._dirty.clear()
            if not await self._call():
                self._dirty.set()

    async def _wait_turn(self, ready_at: float) -> None:
        ready_at = max(ready_at, self._blocked_until)
        while (now := self._clock()) < ready_at:
            await self._sleep(ready_at - now)
            ready_at = max(ready_at, self._blocked_until)

    def _streaming_parts(self) -> list[str]:
        """The messages as they should look now: sealed parts, then the live part with
        the streaming marker (left off when it would not fit)."""
        display = self._surface.neutralize("".join(self._chunks))
        if not display.strip():
            return [status_line(self._surface.neutralize(self._status))]
        parts = plan_split(display, self._limit, start=self._sealed_end, fence=self._sealed_fence)
        for part in parts[:-1]:
            self._sealed.append(part.text)
            self._sealed_end, self._sealed_fence = part.end, part.open_fence
        if not parts:
            return list(self._sealed)
        live = parts[-1].text_with(self._marker)
        if len(live) > self._limit:
            live = parts[-1].text
        return [*self._sealed, live]

    # Ending -----------------------------------------------------------------------

    async def _conclude(self, display: str, kind: EditKind) -> None:
        """The final edit: stop the flusher (letting an in-flight call finish, so edits
        stay in order), then bring every message to `split_message(display)` at once."""
        if self._ended:
            log.debug("reply already concluded; ignoring a second ending")
            return
        self._closed = True  # no more input; a cancelled ending may still be redrawn
        self._final = (split_message(display, self._limit), kind)
        await self._stop_flusher()  # a call waiting for budget may carry the ending already
        for _ in range(MAX_FINAL_ATTEMPTS):
            if self._error is not None:
                break
            await self._wait_turn(self._blocked_until)
            if await self._call():
                break
        else:
            log.error("final reply text not delivered after %d rate limits", MAX_FINAL_ATTEMPTS)
            self._error = PlatformError("the final text was not delivered (rate limited)")
        self._ended = True
        try:
            await self._surface.close()
        except BridgeError as exc:
            log.warning("closing the reply failed: %s", exc)

    async def _stop_flusher(self) -> None:
        task, self._flusher = self._flusher, None
        if task is None:
            return
        if not self._in_call:
            task.cancel()
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # Our ending was cancelled while the flusher's edit was in flight: stop it too,
            # or its stale progress text could land after the "interrupted" notice.
            task.cancel()
            raise

    # Platform calls ---------------------------------------------------------------

    def _now(self) -> tuple[list[str], EditKind]:
        """What the messages should show now, and the kind of call that shows it: the
        ending once known (a message it no longer needs says so), else the live text."""
        if self._final is not None:
            parts, kind = self._final
            return parts + [SUPERSEDED_PART] * (len(self._shown) - len(parts)), kind
        return self._streaming_parts(), self._live_kind()

    def _kind_now(self) -> EditKind:
        return self._final[1] if self._final is not None else self._live_kind()

    def _live_kind(self) -> EditKind:
        """A status line until answer text exists, then the first words once, then progress."""
        if not self._chunks:
            return EditKind.STATUS
        return EditKind.PROGRESS if self._words_shown else EditKind.FIRST_WORDS

    async def _call(self) -> bool:
        """Make the platform show what `_now` says, editing only messages that changed.

        Each message's text is read again just before its call, and a surface that waits
        for budget reads it once more when the call may go out (`_Draft`), so no call
        carries older text than the renderer has, and an ending that arrives meanwhile is
        what a waiting call delivers.

        Returns False when a 429 interrupted it (interval lengthened, retry due after
        `Retry-After`) or the platform refused for good (`platform_error` set).
        """
        self._in_call = True
        try:
            index = 0
            while index < len((now := self._now())[0]):
                parts, kind = now
                if index < len(self._shown) and self._shown[index] == parts[index]:
                    index += 1
                    continue
                draft = _Draft(self, index)
                if index < len(self._shown):
                    await self._surface.edit(self._ids[index], parts[index], kind=kind, draft=draft)
                    self._shown[index] = draft.sent_or(parts[index])
                else:
                    message_id = await self._surface.post(parts[index], kind=kind, draft=draft)
                    self._ids.append(message_id)
                    self._shown.append(draft.sent_or(parts[index]))
                    self._announce(message_id)
                if draft.sent_kind_or(kind) in (EditKind.FIRST_WORDS, EditKind.PROGRESS):
                    self._words_shown = True
                self._last_call = self._clock()
                index += 1
            return True
        except PlatformRateLimited as exc:
            self._last_call = self._clock()
            self._blocked_until = self._last_call + exc.retry_after
            self._interval = min(
                max(self._interval * BACKOFF_FACTOR, exc.retry_after), MAX_EDIT_INTERVAL
            )
            log.info(
                "reply rate limited; retrying in %.1fs, editing every %.1fs",
                exc.retry_after,
                self._interval,
            )
            return False
        except PlatformError as exc:
            self._error = exc
            log.warning("platform refused the reply; no more edits: %s", exc)
            return False
        finally:
            self._in_call = False

    def _announce(self, message_id: str) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(message_id)
        except Exception:
            log.exception("on_message callback failed")


class _Draft:
    """One message's newest text for a surface that waits for budget (`bridge.surface.Draft`);
    remembers what it handed out, so the renderer knows what the platform shows."""

    def __init__(self, renderer: ReplyRenderer, index: int) -> None:
        self._renderer = renderer
        self._index = index
        self._sent: tuple[str, EditKind] | None = None

    @property
    def kind(self) -> EditKind:
        return self._renderer._kind_now()

    def text(self) -> str:
        parts, kind = self._renderer._now()
        text = parts[self._index] if self._index < len(parts) else SUPERSEDED_PART
        self._sent = (text, kind)
        return text

    def sent_or(self, text: str) -> str:
        return text if self._sent is None else self._sent[0]

    def sent_kind_or(self, kind: EditKind) -> EditKind:
        return kind if self._sent is None else self._sent[1]
