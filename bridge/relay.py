"""The platform-agnostic heart: one question in, one progressively drawn answer out.

The relay owns the rules every platform shares — de-duplication, allow-lists, limits,
per-thread ordering, the global concurrency cap, the turn record in the store — so the
Slack and Discord adapters stay thin. It never imports a platform SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bridge import metrics
from bridge.backends.base import ChatBackend
from bridge.backends.events import (
    ActionsProposed,
    AnswerDone,
    AnswerFailed,
    ConversationStarted,
    Source,
    SourcesFound,
    StatusUpdate,
    TextDelta,
)
from bridge.config import Settings
from bridge.errors import PlatformRateLimited
from bridge.logs import bind_correlation_id
from bridge.model import Question, ThreadKey
from bridge.render import DEFAULT_STATUS, INTERRUPTED_NOTICE, ReplyRenderer
from bridge.store import Store, StoreError, TurnStatus
from bridge.surface import ReplyEditor, ReplySurface

log = logging.getLogger(__name__)

SHUTTING_DOWN_TEXT = "The bot is restarting — please ask again in a minute."
EMPTY_QUESTION_HINT = (
    "Hi! Ask me a question in the same message, for example: “How do I reset my password?”"
)
NOT_ALLOWED_TEXT = "Sorry, I'm not enabled here. Ask an admin if you think I should be."
STORE_UNAVAILABLE_TEXT = (
    "Sorry, I can't take questions right now (my database is unavailable). "
    "Please try again in a minute."
)
RATE_LIMITED_TEXT = "You're asking faster than I can answer — please wait a moment and try again."
EMPTY_ANSWER_REASON = "the backend returned an empty answer"
INTERNAL_ERROR_REASON = "something went wrong inside the bridge (it has been logged)"
QUEUED_STATUS = "Queued — waiting for a free slot…"
WAITING_STATUS = "Waiting for the previous answer in this thread…"

RATE_WINDOW_SECONDS = 60.0  # BRIDGE_USER_RATE_PER_MINUTE counts questions in this window
PRUNE_MIN_USERS = 1024  # the rate limiter looks for idle users once it tracks this many
# Bound on the final "interrupted" edit while shutting down: with the default 25 s drain
# it leaves time to stop the platforms within Heroku's 30 s before SIGKILL.
CLEANUP_TIMEOUT_SECONDS = 3.0
# Processes sharing a database prove they are alive this often (and sweep for turns of
# processes that are not); one silent for OWNER_TIMEOUT_SECONDS (three missed beats, so a
# slow database write or a GC pause is not taken for a crash) has its turns recovered.
HEARTBEAT_SECONDS = 15.0
OWNER_TIMEOUT_SECONDS = 45.0
RESTART_REASON = "interrupted by a restart"
RECOVERY_EDIT_ATTEMPTS = 3  # a stale reply's edit waits out this many 429s
RECOVERY_EDIT_TIMEOUT_SECONDS = 10.0  # bound on each of those edits (and each wait)


class Outcome(StrEnum):
    """How `Relay.answer` ended, for adapters and tests."""

    DONE = "done"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass
class _ThreadLocks:
    """One lock per thread, dropped when nobody holds or waits for it (bounded memory)."""

    _locks: dict[ThreadKey, asyncio.Lock] = field(default_factory=dict)
    _users: dict[ThreadKey, int] = field(default_factory=dict)

    def is_busy(self, thread: ThreadKey) -> bool:
        return self._users.get(thread, 0) > 0

    @contextlib.asynccontextmanager
    async def hold(self, thread: ThreadKey):  # type: ignore[no-untyped-def]
        lock = self._locks.setdefault(thread, asyncio.Lock())
        self._users[thread] = self._users.get(thread, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[thread] -= 1
            if not self._users[thread]:
                del self._users[thread]
                del self._locks[thread]


class _ReplyRecorder:
    """Stores a reply's message ids as each part is posted, so crash recovery edits the
    part that was live, not only the placeholder. Writes run one at a time and always
    carry the whole list, so an older list never replaces a newer one."""

    def __init__(self, store: Store, question: Question, surface: ReplySurface) -> None:
        self._store = store
        self._question = question
        self._surface = surface
        self._ids: list[str] = []
        self._lock = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()

    def posted(self, message_id: str) -> None:
        """`ReplyRenderer` callback (synchronous): a part was posted."""
        self._ids.append(message_id)
        task = asyncio.create_task(self._save_quietly(), name="reply-ids")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def save(self, **fields: object) -> None:
        async with self._lock:
            await self._store.update_turn(
                self._question.thread.platform,
                self._question.event_id,
                reply_channel=self._surface.channel,
                reply_message_ids=list(self._ids),
                **fields,
            )

    async def settle(self) -> None:
        """Wait for writes still running (the store must not close under them)."""
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _save_quietly(self) -> None:
        try:
            await self.save()
        except Exception as exc:  # the final record repeats the ids; nothing is lost
            log.warning("could not record reply ids: %s", exc)


@dataclass
class _RateLimiter:
    """Sliding-window count of questions per (platform, user)."""

    per_window: int
    window: float = RATE_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _prune_at: int = PRUNE_MIN_USERS

    def allow(self, platform: str, user_id: str) -> bool:
        if self.per_window <= 0:
            return True
        now = self.clock()
        stamps = self._seen.setdefault((platform, user_id), deque())
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        if len(stamps) >= self.per_window:
            return False
        stamps.append(now)
        self._forget_idle(now)
        return True

    def _forget_idle(self, now: float) -> None:
        """Drop users with no question inside the window, so memory follows the active
        users rather than every user ever seen. Amortized: only when the map doubled."""
        if len(self._seen) < self._prune_at:
            return
        self._seen = {
            key: stamps for key, stamps in self._seen.items() if now - stamps[-1] < self.window
        }
        self._prune_at = max(PRUNE_MIN_USERS, 2 * len(self._seen))


class Relay:
    """Answers questions: store bookkeeping, backend stream, reply rendering.

    Every accepted question ends as done, error or interrupted — visibly in chat and in
    the store — including when the process is asked to stop (`drain`) or crashed
    earlier (`recover`).
    """

    def __init__(
        self,
        *,
        store: Store,
        backend: ChatBackend,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        instance_id: str | None = None,
        heartbeat_interval: float = HEARTBEAT_SECONDS,
        owner_timeout: float = OWNER_TIMEOUT_SECONDS,
    ) -> None:
        """`instance_id` names this process in the store (a fresh uuid by default);
        `heartbeat_interval` and `owner_timeout` are shortened by tests."""
        self._store = store
        self._backend = backend
        self._settings = settings
        self._clock = clock
        self._threads = _ThreadLocks()
        self._slots = asyncio.Semaphore(settings.bridge_max_concurrency)
        self._rate = _RateLimiter(settings.bridge_user_rate_per_minute, clock=clock)
        self._editors: dict[str, ReplyEditor] = {}
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self.instance_id = instance_id or uuid.uuid4().hex
        self._heartbeat_interval = heartbeat_interval
        self._owner_timeout = owner_timeout
        self._keep_alive_task: asyncio.Task[None] | None = None
        self._sweeping = False
        self.accepting = True

    # Adapters ------------------------------------------------------------------------

    def register_editor(self, platform: str, editor: ReplyEditor) -> None:
        """Let the relay edit `platform` replies of earlier processes (recovery)."""
        self._editors[platform] = editor

    def submit(self, question: Question, surface: ReplySurface) -> asyncio.Task[Outcome]:
        """Start answering in the background and return at once (platform acks stay fast).

        The task is tracked, so `drain` can wait for it and its failures are logged.
        """
        task = asyncio.create_task(
            self._answer(question, surface, admitted=self.accepting),
            name=f"answer-{question.correlation_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)
        return task

    @property
    def active_count(self) -> int:
        """Answers currently being worked on (queued or streaming)."""
        return len(self._tasks)

    async def knows_thread(self, thread: ThreadKey) -> bool:
        """Whether this thread already has a backend conversation (bot answered there)."""
        return await self._store.get_conversation(thread) is not None

    async def thread_of_reply(self, platform: str, message_id: str) -> ThreadKey | None:
        """The thread whose answer includes this bot message (any part, any process)."""
        return await self._store.find_thread_by_reply(platform, message_id)

    async def reset(
        self, thread: ThreadKey, *, event_id: str | None = None, user_id: str = ""
    ) -> bool:
        """Forget the thread's conversation; the next question starts a new one.

        With `event_id`, the reset is claimed in the store like a question, so a
        re-delivered event (Slack retries, even after a restart) is recognised: it returns
        False and forgets nothing, and the adapter does not confirm twice.
        """
        if event_id is not None:
            claim = Question(thread=thread, user_id=user_id, text="", event_id=event_id)
            claimed = await self._store.claim_turn(
                claim, backend=self._backend.name, status=TurnStatus.DONE, owner=self.instance_id
            )
            if not claimed:
                return False
        await self._store.forget_conversation(thread)
        return True

    # Answering -----------------------------------------------------------------------

    async def answer(self, question: Question, surface: ReplySurface) -> Outcome:
        """Answer one question through `surface`; returns how it ended."""
        return await self._answer(question, surface, admitted=self.accepting)

    async def _answer(
        self, question: Question, surface: ReplySurface, *, admitted: bool
    ) -> Outcome:
        """`admitted`: whether we were still accepting when the question arrived; a
        question submitted just before a drain began is answered, not refused."""
        bind_correlation_id(question.correlation_id)
        platform = question.thread.platform
        try:
            claimed = await self._store.claim_turn(
                question, backend=self._backend.name, owner=self.instance_id
            )
        except StoreError as exc:
            log.error("could not record the question: %s", exc)
            await _tell(surface, STORE_UNAVAILABLE_TEXT)
            metrics.ANSWERS.labels(platform, Outcome.ERROR.value).inc()
            return Outcome.ERROR
        if not claimed:
            log.info("duplicate event %s ignored", question.event_id)
            return Outcome.DUPLICATE
        metrics.QUESTIONS.labels(platform).inc()  # re-deliveries are not new questions
        refusal = self._refusal(question) if admitted else SHUTTING_DOWN_TEXT
        if refusal is not None:
            outcome = await self._refuse(question, surface, refusal)
        else:
            outcome = await self._answer_accepted(question, surface)
        metrics.ANSWERS.labels(platform, outcome.value).inc()
        return outcome

    def _refusal(self, question: Question) -> str | None:
        """The polite reply for a question we will not send to the backend, if any."""
        settings = self._settings
        text = question.text.strip()
        if not self.allows(question):
            return NOT_ALLOWED_TEXT
        if not text:
            return EMPTY_QUESTION_HINT
        if len(text) > settings.bridge_max_question_chars:
            return (
                f"That question is {len(text):,} characters long; the limit is "
                f"{settings.bridge_max_question_chars:,}. Please shorten it."
            )
        if not self._rate.allow(question.thread.platform, question.user_id):
            return RATE_LIMITED_TEXT
        return None

    def allows(self, question: Question) -> bool:
        """Whether the allow-lists admit this question (adapters may ask before doing
        visible work such as creating a Discord thread)."""
        settings = self._settings
        thread = question.thread
        if settings.bridge_allowed_users and question.user_id not in settings.bridge_allowed_users:
            return False
        if question.is_dm:
            return True  # DMs have no channel or guild to allow; the user list still applies
        if settings.bridge_allowed_channels and not (
            {thread.channel, thread.thread} & settings.bridge_allowed_channels
        ):
            return False
        return not (
            thread.platform == "discord"
            and settings.bridge_allowed_guilds
            and thread.workspace not in settings.bridge_allowed_guilds
        )

    async def _refuse(self, question: Question, surface: ReplySurface, text: str) -> Outcome:
        log.info("question refused: %s", text)
        await _tell(surface, text)
        await self._store.update_turn(
            question.thread.platform, question.event_id, status=TurnStatus.ERROR, error=text
        )
        return Outcome.REFUSED

    async def _answer_accepted(self, question: Question, surface: ReplySurface) -> Outcome:
        replies = _ReplyRecorder(self._store, question, surface)
        renderer = ReplyRenderer(surface, on_message=replies.posted)
        waiting_status = self._waiting_status(question.thread)
        try:
            await renderer.start(waiting_status)
            metrics.BRIDGE_ADDED.labels(question.thread.platform).observe(
                max(0.0, time.monotonic() - question.received_at)
            )
            await replies.save(question_text=question.text)
            async with self._threads.hold(question.thread), self._slots:
                if waiting_status is not None:
                    await renderer.status(DEFAULT_STATUS)
                return await self._stream(question, surface, renderer)
        except asyncio.CancelledError:
            await self._interrupt(question, surface, renderer)
            raise
        except Exception:
            log.exception("answer failed inside the bridge")
            try:
                return await self._fail(question, surface, renderer, INTERNAL_ERROR_REASON, "")
            except Exception:  # showing the failure failed too: the record must still end
                log.exception("could not show the failure either")
                await self._store.update_turn(
                    question.thread.platform,
                    question.event_id,
                    status=TurnStatus.ERROR,
                    error=INTERNAL_ERROR_REASON,
                )
                return Outcome.ERROR
        finally:
            await replies.settle()

    def _waiting_status(self, thread: ThreadKey) -> str | None:
        """The placeholder text when the answer cannot start right away."""
        if self._threads.is_busy(thread):
            return WAITING_STATUS
        if self._slots.locked():
            return QUEUED_STATUS
        return None

    async def _stream(
        self, question: Question, surface: ReplySurface, renderer: ReplyRenderer
    ) -> Outcome:
        thread = question.thread
        backend = self._backend
        conversation = await self._store.get_conversation(thread)
        conversation_id = (
            conversation.conversation_id
            if conversation is not None and conversation.backend == backend.name
            else None
        )
        await self._store.update_turn(
            thread.platform, question.event_id, status=TurnStatus.STREAMING
        )
        started = self._clock()
        first_text_at: float | None = None
        parts: list[str] = []
        sources: tuple[Source, ...] = ()
        metrics.ACTIVE_STREAMS.inc()
        events = backend.stream_answer(
            question.text.strip(), conversation_id, metadata={"platform": thread.platform}
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    match event:
                        case ConversationStarted(conversation_id=new_id) if (
                            new_id != conversation_id
                        ):
                            await self._store.save_conversation(thread, backend.name, new_id)
                            conversation_id = new_id
                        case TextDelta(text=delta):
                            if first_text_at is None and delta:
                                first_text_at = self._clock()
                            parts.append(delta)
                            await renderer.append(delta)
                        case StatusUpdate(text=status):
                            await renderer.status(status)
                        case SourcesFound(sources=found):
                            sources = found
                        case ActionsProposed():
                            log.debug("backend proposed actions; not rendered yet")
                        case AnswerDone() as done:
                            if done.conversation_id and done.conversation_id != conversation_id:
                                await self._store.save_conversation(
                                    thread, backend.name, done.conversation_id
                                )
                            final = done.text if done.text.strip() else "".join(parts)
                            if not final.strip():
                                return await self._fail(
                                    question, surface, renderer, EMPTY_ANSWER_REASON, ""
                                )
                            await renderer.finish(final, done.sources or sources)
                            return await self._finish_turn(
                                question,
                                surface,
                                renderer,
                                TurnStatus.DONE,
                                backend_message_id=done.message_id,
                                answer_text=final,
                                first_text_ms=_ms(started, first_text_at),
                                total_ms=_ms(started, self._clock()),
                            )
                        case AnswerFailed() as failed:
                            partial = failed.partial_text or "".join(parts)
                            return await self._fail(
                                question, surface, renderer, failed.reason, partial
                            )
        finally:
            metrics.ACTIVE_STREAMS.dec()
        # A client that ends without a terminal event breaks its contract; still end visibly.
        return await self._fail(
            question, surface, renderer, "the answer stopped before it was complete", "".join(parts)
        )

    async def _fail(
        self,
        question: Question,
        surface: ReplySurface,
        renderer: ReplyRenderer,
        reason: str,
        partial: str,
    ) -> Outcome:
        await renderer.fail(reason, partial or None)
        return await self._finish_turn(
            question, surface, renderer, TurnStatus.ERROR, error=reason, answer_text=partial or None
        )

    async def _interrupt(
        self, question: Question, surface: ReplySurface, renderer: ReplyRenderer
    ) -> None:
        """Cancelled (shutdown past the drain window): say so in chat and in the store."""
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_SECONDS):
                await renderer.interrupt()
                await self._finish_turn(
                    question,
                    surface,
                    renderer,
                    TurnStatus.INTERRUPTED,
                    error="interrupted by shutdown",
                )
        except Exception:
            log.exception("could not mark an interrupted answer")
        metrics.ANSWERS.labels(question.thread.platform, Outcome.INTERRUPTED.value).inc()

    async def _finish_turn(
        self,
        question: Question,
        surface: ReplySurface,
        renderer: ReplyRenderer,
        status: TurnStatus,
        **fields: object,
    ) -> Outcome:
        """Record how the turn ended. An answer the platform refused to show (deleted
        channel, lost permission) is an error, whatever the backend said."""
        if status is TurnStatus.DONE and renderer.platform_error is not None:
            status = TurnStatus.ERROR
            fields["error"] = f"the platform refused the reply: {renderer.platform_error}"
        await self._store.update_turn(
            question.thread.platform,
            question.event_id,
            status=status,
            reply_channel=surface.channel,
            reply_message_ids=list(renderer.message_ids),
            **fields,
        )
        return Outcome(status.value)

    # Lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Record this process as alive and keep it so until `close`, before any question
        is claimed: other processes on the same database leave our turns alone."""
        await self._store.heartbeat(self.instance_id)
        self._keep_alive_task = asyncio.create_task(self._keep_alive(), name="relay-heartbeat")

    async def _keep_alive(self) -> None:
        """Beat every `heartbeat_interval`, and once `recover` ran, sweep again: turns of
        a process that crashed moments ago become stale only after `owner_timeout`.

        A sweep runs beside the beat, never inside it: its reply edits may wait on
        platform rate limits, and a late beat would make other processes take this one
        for dead and interrupt its live answers.
        """
        sweep: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(self._heartbeat_interval)
                try:
                    await self._store.heartbeat(self.instance_id)
                except Exception:  # a database hiccup must not stop the beat: next time
                    log.exception("heartbeat failed")
                    continue
                if self._sweeping and (sweep is None or sweep.done()):
                    sweep = asyncio.create_task(self._sweep(), name="relay-recovery-sweep")
        finally:
            if sweep is not None:
                sweep.cancel()
                await asyncio.gather(sweep, return_exceptions=True)

    async def _sweep(self) -> None:
        try:
            await self.recover()
        except Exception:
            log.exception("recovery sweep failed")

    async def recover(self) -> int:
        """Mark unfinished turns of processes that are gone (signed off, or silent for
        `owner_timeout`) as interrupted and edit their replies to say so; later sweeps
        repeat this every heartbeat. Call it once the platforms are connected, so the
        replies can be edited. Returns how many turns were recovered."""
        self._sweeping = True
        recovered = 0
        for turn in await self._store.stale_turns(self.instance_id, self._owner_timeout):
            platform = turn.thread.platform
            editor = self._editors.get(platform)
            has_reply = bool(turn.reply_message_ids and turn.reply_channel)
            if has_reply and editor is None:
                continue  # leave it to a process connected to that platform
            if not await self._store.interrupt_turn(platform, turn.event_id, RESTART_REASON):
                continue  # finished meanwhile, or another process recovered it first
            recovered += 1
            if editor is not None and has_reply:
                await _edit_interrupted(editor, turn.reply_channel, turn.reply_message_ids[-1])
        if recovered:
            log.info("marked %d answers from an earlier process as interrupted", recovered)
        return recovered

    async def close(self) -> None:
        """Stop the heartbeat and sign off (after `drain`: answers in flight stay ours
        until then), so other processes recover what is left without waiting."""
        task, self._keep_alive_task = self._keep_alive_task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await self._store.sign_off(self.instance_id)
        except Exception:  # the database may be what failed; its turns then time out
            log.exception("could not record this process as stopped")

    async def drain(self, grace: float) -> None:
        """Stop accepting questions, let answers in flight finish for up to `grace`
        seconds, then interrupt the rest (their replies say so)."""
        self.accepting = False
        self._sweeping = False  # the platforms are about to stop: no more reply edits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._tasks:
            log.info("draining %d answers (up to %.0fs)", len(self._tasks), grace)
        # Questions submitted meanwhile (refused: "restarting") are waited for too.
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            log.info("interrupting %d answers still running", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    def _task_finished(self, task: asyncio.Task[Outcome]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("answer task failed", exc_info=task.exception())


async def _edit_interrupted(editor: ReplyEditor, channel: str, message_id: str) -> None:
    """Say "interrupted" in a stale reply: waits out a few rate limits, each attempt
    bounded; one reply that cannot be edited must not stop recovery of the others."""
    for _ in range(RECOVERY_EDIT_ATTEMPTS):
        try:
            async with asyncio.timeout(RECOVERY_EDIT_TIMEOUT_SECONDS):
                await editor.edit_message(channel, message_id, INTERRUPTED_NOTICE)
            return
        except PlatformRateLimited as exc:
            await asyncio.sleep(min(exc.retry_after, RECOVERY_EDIT_TIMEOUT_SECONDS))
        except Exception as exc:
            log.warning("could not edit interrupted reply %s: %s", message_id, exc)
            return
    log.warning("could not edit interrupted reply %s: still rate limited", message_id)


async def _tell(surface: ReplySurface, text: str) -> None:
    """Post one short message; best effort (the platform may be closing at shutdown)."""
    try:
        await surface.post(surface.neutralize(text))
        await surface.close()
    except Exception as exc:
        log.warning("could not deliver %r: %s", text[:40], exc)


def _ms(start: float, end: float | None) -> int | None:
    return None if end is None else round((end - start) * 1000)
