"""The `Relay` facade: what the adapters call, wired from one part per job.

admission (who is answered) → record (claim the turn) → ordering (thread, slot) →
dispatch (stream and draw) → record (how it ended); liveness and recovery keep turns of
crashed processes from showing the streaming marker forever; `drain` ends ours. The
loop's load (`bridge.load`) paces every reply's progress edits while it saturates.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from bridge import metrics
from bridge.backends.base import ChatBackend
from bridge.chatbots import Chatbots
from bridge.config import Settings
from bridge.feedback import Handoffs, ThreadGate
from bridge.feedback.handoff import RESUMED_TEXT
from bridge.load import LoopLoad
from bridge.logs import bind_correlation_id
from bridge.model import Question, ThreadKey
from bridge.relay.admission import Admission
from bridge.relay.dispatch import Dispatcher, fail, interrupt
from bridge.relay.liveness import LIVENESS_CHECK_SECONDS, Liveness
from bridge.relay.ordering import Ordering
from bridge.relay.record import Outcome, TurnBook, TurnRecord
from bridge.relay.recovery import Recovery
from bridge.render import DEFAULT_STATUS, ReplyRenderer
from bridge.store import Store, StoreError, TurnStatus
from bridge.surface import EditKind, ReplyEditor, ReplySurface
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

STORE_UNAVAILABLE_TEXT = (
    "Sorry, I can't take questions right now (my database is unavailable). "
    "Please try again in a minute."
)
INTERNAL_ERROR_REASON = "something went wrong inside the bridge (it has been logged)"


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
        liveness_interval: float = LIVENESS_CHECK_SECONDS,
        handoffs: Handoffs | None = None,
        chatbots: Chatbots | None = None,
    ) -> None:
        """`instance_id` names this process in the store (a fresh uuid by default);
        `liveness_interval` (how often the lock is checked and orphans swept) is
        shortened by tests; `handoffs` keeps the bot quiet in threads handed to a person;
        `chatbots` routes questions to other chatbots than `backend` (BRIDGE_ROUTES_FILE)."""
        self.instance_id = instance_id or uuid.uuid4().hex
        self._store = store
        self.chatbots = chatbots or Chatbots.single(backend)
        self._admission = Admission(
            settings, handoffs or Handoffs(store, {}), clock=clock, chatbots=self.chatbots
        )
        self._turns = TurnBook(store, backend=backend.name, owner=self.instance_id)
        self._ordering = Ordering(settings.bridge_max_concurrency)
        self._dispatch = Dispatcher(store, self.chatbots, clock=clock)
        self._liveness = Liveness(store, instance_id=self.instance_id, interval=liveness_interval)
        self._recovery = Recovery(store, self._liveness, interval=liveness_interval)
        self._answers = TaskOwner("relay")
        self._load = LoopLoad()
        self.accepting = True

    # Adapters ------------------------------------------------------------------------

    def register_editor(self, platform: str, editor: ReplyEditor) -> None:
        """Let the relay edit `platform` replies of earlier processes (recovery)."""
        self._recovery.register_editor(platform, editor)

    def submit(self, question: Question, surface: ReplySurface) -> asyncio.Task[Outcome]:
        """Start answering in the background and return at once (platform acks stay fast).

        The task is tracked, so `drain` can wait for it and its failures are logged.
        """
        return self._answers.spawn(
            self._answer(question, surface, admitted=self.accepting),
            name=f"answer-{question.correlation_id}",
        )

    @property
    def active_count(self) -> int:
        """Answers currently being worked on (queued or streaming)."""
        return len(self._answers)

    def allows(self, question: Question) -> bool:
        """Whether the allow-lists admit this question (adapters may ask before doing
        visible work such as creating a Discord thread)."""
        return self._admission.allows(question)

    def answers_everything(self, platform: str, workspace: str, channel: str) -> bool:
        """Whether a route turns on auto-answer (mode `all`) in this channel: every
        top-level message from a person is answered, without a mention."""
        return self.chatbots.mode_for(platform, workspace, channel) == "all"

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
            if not await self._turns.claim(claim, status=TurnStatus.DONE):
                return False
        await self._store.forget_conversation(thread)
        return True

    # Answering -----------------------------------------------------------------------

    async def answer(self, question: Question, surface: ReplySurface) -> Outcome:
        """Answer one question through `surface` and return how it ended (the console,
        tests). It runs as a tracked task like `submit`'s, so `drain` sees it too."""
        return await self.submit(question, surface)

    async def _answer(
        self, question: Question, surface: ReplySurface, *, admitted: bool
    ) -> Outcome:
        """`admitted`: whether we were still accepting when the question arrived; a
        question submitted just before a drain began is answered, not refused."""
        bind_correlation_id(question.correlation_id)
        platform = question.thread.platform
        try:
            gate = await self._admission.gate(question)
            if gate is ThreadGate.SILENT:
                log.info("thread is with a person; staying quiet")
                return Outcome.HANDED_OFF
            # A `resume` is claimed like a `reset`: a re-delivery is recognised.
            status = TurnStatus.DONE if gate is ThreadGate.RESUME else TurnStatus.QUEUED
            claimed = await self._turns.claim(question, status=status)
        except StoreError as exc:
            log.error("could not record the question: %s", exc)
            await _tell(surface, STORE_UNAVAILABLE_TEXT)
            metrics.ANSWERS.labels(platform, Outcome.ERROR.value).inc()
            return Outcome.ERROR
        if not claimed:
            log.info("duplicate event %s ignored", question.event_id)
            return Outcome.DUPLICATE
        if gate is ThreadGate.RESUME:
            await self._admission.resume(question)
            await _tell(surface, RESUMED_TEXT)
            return Outcome.RESUMED
        metrics.QUESTIONS.labels(platform).inc()  # re-deliveries are not new questions
        refusal = self._admission.refusal(question, accepting=admitted)
        if refusal is not None:
            log.info("question refused: %s", refusal)
            await _tell(surface, refusal)
            await self._turns.refused(question, refusal)
            outcome = Outcome.REFUSED
        else:
            outcome = await self._answer_accepted(question, surface)
        metrics.ANSWERS.labels(platform, outcome.value).inc()
        return outcome

    async def _answer_accepted(self, question: Question, surface: ReplySurface) -> Outcome:
        record = self._turns.open(question, surface)
        renderer = ReplyRenderer(
            surface, on_message=record.posted, progress_stretch=self._load.stretch
        )
        waiting_status = self._ordering.waiting_status(question.thread)
        try:
            await renderer.start(waiting_status)
            metrics.BRIDGE_ADDED.labels(question.thread.platform).observe(
                max(0.0, time.monotonic() - question.received_at)
            )
            async with self._ordering.turn(question.thread):
                if waiting_status is not None:
                    await renderer.status(DEFAULT_STATUS)
                return await self._dispatch.stream(question, renderer, record)
        except asyncio.CancelledError:
            await interrupt(renderer, record)
            metrics.ANSWERS.labels(question.thread.platform, Outcome.INTERRUPTED.value).inc()
            raise
        except Exception:
            log.exception("answer failed inside the bridge")
            return await _fail_visibly_or_record(renderer, record)
        finally:
            await record.settle()

    # Lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Take this process's lock and keep it until `close`, before any question is
        claimed: other processes on the same database leave our turns alone. From then
        on the loop's load is sampled, to slow progress edits down when it saturates."""
        await self._liveness.start()
        self._load.start()

    async def recover(self) -> int:
        """Mark unfinished turns of processes that are gone as interrupted and edit their
        replies to say so; later sweeps repeat this every few seconds. Call it once the
        platforms are connected, so the replies can be edited. Returns how many turns
        were recovered."""
        return await self._recovery.recover()

    def start_recovery(self) -> None:
        """`recover` in the background, now and every few seconds, for start-up: the
        bridge is ready at once, however many replies of a crashed process need editing
        (the log says how many were, as `recover` does)."""
        self._recovery.start()

    async def drain(self, grace: float) -> None:
        """Stop accepting questions, let answers in flight finish for up to `grace`
        seconds, then interrupt the rest (their replies say so)."""
        self.accepting = False
        self._recovery.stop_sweeping()  # the platforms are about to stop: no more edits
        if self._answers:
            log.info("draining %d answers (up to %.0fs)", len(self._answers), grace)
        # Questions submitted meanwhile (refused: "restarting") are waited for too.
        await self._answers.wait(grace)
        if self._answers:
            log.info("interrupting %d answers still running", len(self._answers))
            await self._answers.stop()

    async def close(self) -> None:
        """Stop sweeping, sign off and release the lock (after `drain`: answers in flight
        stay ours until then), so other processes recover what is left at once."""
        await self._recovery.stop()
        await self._liveness.close()
        await self._load.stop()


async def _fail_visibly_or_record(renderer: ReplyRenderer, record: TurnRecord) -> Outcome:
    """A bug ended the answer: say so in the reply; if even that fails, the record must
    still end."""
    try:
        return await fail(renderer, record, INTERNAL_ERROR_REASON, "")
    except Exception:
        log.exception("could not show the failure either")
        await record.save(status=TurnStatus.ERROR, error=INTERNAL_ERROR_REASON)
        return Outcome.ERROR


async def _tell(surface: ReplySurface, text: str) -> None:
    """Post one short message; best effort (the platform may be closing at shutdown)."""
    try:
        await surface.post(surface.neutralize(text), kind=EditKind.NOTICE)
        await surface.close()
    except Exception as exc:
        log.warning("could not deliver %r: %s", text[:40], exc)
