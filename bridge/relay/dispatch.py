"""Dispatch: one backend stream turned into one drawn reply and its ending.

Each normalized backend event goes to its place — text to the renderer, conversation
ids to the store, the terminal event to the turn record — and every way a stream can
end (done, failed, cut short, cancelled) ends the reply visibly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bridge import metrics
from bridge.backends.events import (
    ActionsProposed,
    AnswerDone,
    AnswerFailed,
    ConversationLost,
    ConversationStarted,
    Source,
    SourcesFound,
    StatusUpdate,
    TextDelta,
)
from bridge.chatbots import Chatbots
from bridge.context import load_context
from bridge.model import Question
from bridge.relay.record import Outcome, TurnRecord
from bridge.render import ReplyRenderer
from bridge.safety import safe_sources
from bridge.store import Store, TurnStatus

log = logging.getLogger(__name__)

EMPTY_ANSWER_REASON = "the backend returned an empty answer"
CUT_SHORT_REASON = "the answer stopped before it was complete"
SHUTDOWN_REASON = "interrupted by shutdown"
# Said above an answer when the backend no longer knew the thread's conversation (it
# expired, or the backend changed): the person sees why earlier context is gone.
CONVERSATION_LOST_NOTICE = (
    "_The chatbot no longer had our earlier conversation, so this answer starts a new one._\n\n"
)
# Bound on the final "interrupted" edit while shutting down: with the default 25 s drain
# it leaves time to stop the platforms within Heroku's 30 s before SIGKILL.
CLEANUP_TIMEOUT_SECONDS = 3.0


class Dispatcher:
    """Streams answers from each thread's chatbot, continuing its conversation."""

    def __init__(
        self, store: Store, chatbots: Chatbots, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._chatbots = chatbots
        self._clock = clock

    async def stream(
        self, question: Question, renderer: ReplyRenderer, record: TurnRecord
    ) -> Outcome:
        """Ask the backend and draw its answer; returns how the turn ended."""
        thread = question.thread
        conversation = await self._store.get_conversation(thread)
        # The thread's route picks the chatbot; a conversation keeps the one it began on.
        started_on = conversation.backend if conversation is not None else None
        backend = self._chatbots.resolve(thread, started_on)
        conversation_id = (
            conversation.conversation_id
            if conversation is not None and conversation.backend == backend.name
            else None
        )
        await record.save(status=TurnStatus.STREAMING)
        started = self._clock()
        first_text_at: float | None = None
        parts: list[str] = []
        preface = ""  # bridge text shown above the backend's answer
        sources: tuple[Source, ...] = ()
        # Joining a thread late: its earlier messages go with a conversation's first turn.
        history = await load_context(question.context, first_turn=conversation_id is None)
        metrics.ACTIVE_STREAMS.inc()
        events = backend.stream_answer(
            question.text.strip(),
            conversation_id,
            metadata={"platform": thread.platform},
            history=history,
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
                        case ConversationLost():
                            await self._store.forget_conversation(thread)
                            conversation_id = None
                            preface = CONVERSATION_LOST_NOTICE
                            await renderer.append(preface)
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
                                return await fail(renderer, record, EMPTY_ANSWER_REASON, preface)
                            final = preface + final
                            shown = safe_sources(done.sources or sources)
                            await renderer.finish(final, shown)
                            return await record.finish(
                                renderer,
                                TurnStatus.DONE,
                                backend_message_id=done.message_id,
                                answer_text=final,
                                first_text_ms=_ms(started, first_text_at),
                                total_ms=_ms(started, self._clock()),
                                sources=[source.url for source in shown],
                            )
                        case AnswerFailed() as failed:
                            partial = preface + (failed.partial_text or "".join(parts))
                            return await fail(renderer, record, failed.reason, partial)
        finally:
            metrics.ACTIVE_STREAMS.dec()
        # A client that ends without a terminal event breaks its contract; still end visibly.
        return await fail(renderer, record, CUT_SHORT_REASON, preface + "".join(parts))


async def fail(renderer: ReplyRenderer, record: TurnRecord, reason: str, partial: str) -> Outcome:
    """End the reply and the turn as an error, keeping any partial answer."""
    await renderer.fail(reason, partial or None)
    return await record.finish(
        renderer, TurnStatus.ERROR, error=reason, answer_text=partial or None
    )


async def interrupt(renderer: ReplyRenderer, record: TurnRecord) -> None:
    """Cancelled (shutdown past the drain window): say so in chat and in the store,
    within `CLEANUP_TIMEOUT_SECONDS`."""
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT_SECONDS):
            await renderer.interrupt()
            await record.finish(renderer, TurnStatus.INTERRUPTED, error=SHUTDOWN_REASON)
    except Exception:
        log.exception("could not mark an interrupted answer")


def _ms(start: float, end: float | None) -> int | None:
    return None if end is None else round((end - start) * 1000)
