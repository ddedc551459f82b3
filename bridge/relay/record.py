"""The turn record: what the store knows about each question and its reply.

Every accepted question is claimed once (re-deliveries are recognised, even after a
restart), and ends in the store as done, error or interrupted. The reply's message ids
are saved as each part is posted, so crash recovery edits the part that was live.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

from bridge.model import Question
from bridge.render import ReplyRenderer
from bridge.store import Store, TurnStatus
from bridge.surface import ReplySurface
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """How `Relay.answer` ended, for adapters and tests."""

    DONE = "done"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    HANDED_OFF = "handed_off"  # a person has the thread: the bot stayed quiet
    RESUMED = "resumed"  # `resume` gave a handed-off thread back to the bot


class TurnBook:
    """Claims turns for this process and opens their records."""

    def __init__(self, store: Store, *, backend: str, owner: str) -> None:
        self._store = store
        self._backend = backend
        self._owner = owner

    async def claim(self, question: Question, *, status: TurnStatus = TurnStatus.QUEUED) -> bool:
        """Record the question as ours; False when its event was claimed before.

        Raises:
            StoreError: the database could not record it.
        """
        return await self._store.claim_turn(
            question, backend=self._backend, status=status, owner=self._owner
        )

    async def refused(self, question: Question, text: str) -> None:
        """A claimed question we did not send to the backend ends as an error."""
        await self._store.update_turn(
            question.thread.platform, question.event_id, status=TurnStatus.ERROR, error=text
        )

    def open(self, question: Question, surface: ReplySurface) -> TurnRecord:
        return TurnRecord(self._store, question, surface)


class TurnRecord:
    """The store's record of one accepted turn while it is answered.

    Writes run one at a time and always carry the whole list of message ids, so an
    older list never replaces a newer one.
    """

    def __init__(self, store: Store, question: Question, surface: ReplySurface) -> None:
        self._store = store
        self._question = question
        self._surface = surface
        self._ids: list[str] = []
        self._lock = asyncio.Lock()
        self._writes = TaskOwner("reply record")

    def posted(self, message_id: str) -> None:
        """`ReplyRenderer` callback (synchronous): a part was posted."""
        self._ids.append(message_id)
        self._writes.spawn(self._save_quietly(), name="reply-ids")

    async def save(self, **fields: object) -> None:
        """Update the turn's `fields`, with where its reply is."""
        async with self._lock:
            await self._store.update_turn(
                self._question.thread.platform,
                self._question.event_id,
                reply_channel=self._surface.channel,
                reply_message_ids=list(self._ids),
                **fields,
            )

    async def finish(
        self, renderer: ReplyRenderer, status: TurnStatus, **fields: object
    ) -> Outcome:
        """Record how the turn ended. An answer the platform refused to show (deleted
        channel, lost permission) is an error, whatever the backend said."""
        if status is TurnStatus.DONE and renderer.platform_error is not None:
            status = TurnStatus.ERROR
            fields["error"] = f"the platform refused the reply: {renderer.platform_error}"
        self._ids = list(renderer.message_ids)
        await self.save(status=status, **fields)
        return Outcome(status.value)

    async def settle(self) -> None:
        """Wait for writes still running (the store must not close under them)."""
        await self._writes.wait()

    async def _save_quietly(self) -> None:
        try:
            await self.save()
        except Exception as exc:  # the final record repeats the ids; nothing is lost
            log.warning("could not record reply ids: %s", exc)
