"""Hand-off to a person: "Talk to a person" notifies the operator's configured Slack
user group or Discord role once, and the bot stays out of that thread until someone
presses "Back to the bot" or says `resume`.

This is the only place a mention is ever produced, and only of the configured group or
role (`BRIDGE_HANDOFF_SLACK`, `BRIDGE_HANDOFF_DISCORD`); the text around it is fixed,
so no user or backend text can add another.
"""

from __future__ import annotations

import logging
from enum import Enum

from bridge import metrics
from bridge.model import ThreadKey
from bridge.store import Store

log = logging.getLogger(__name__)

RESUME_COMMAND = "resume"
HANDOFF_TEXT = (
    "{mention} someone here would like a person to take over. I'll stay quiet in this "
    "thread until someone presses “Back to the bot” or says `resume`."
)
ALREADY_HANDED_OFF_TEXT = "This thread is already waiting for a person."
HANDOFF_OFF_TEXT = "Hand-off to a person is not set up for this bot."
RESUMED_TEXT = "I'm back — ask me anything in this thread again."
NOT_HANDED_OFF_TEXT = "I'm already answering in this thread."


def is_resume(text: str) -> bool:
    """`resume` (any case, surrounding spaces allowed) gives a thread back to the bot."""
    return text.strip().lower() == RESUME_COMMAND


class ThreadGate(Enum):
    """What the relay does with a message in a thread, hand-offs considered."""

    ANSWER = "answer"  # no hand-off: the usual rules apply
    SILENT = "silent"  # a person has the thread: say nothing
    RESUME = "resume"  # `resume` in a handed-off thread: end the hand-off, confirm


class Handoffs:
    """Open, close and check hand-offs; the mention targets come from the settings.

    Args:
        targets: platform → the group or role id to notify; a platform without one has
            no "Talk to a person" button.
    """

    def __init__(self, store: Store, targets: dict[str, str]) -> None:
        self._store = store
        self._targets = {platform: target for platform, target in targets.items() if target}

    def target(self, platform: str) -> str | None:
        """The group (Slack `S…`) or role id notified on `platform`, if configured."""
        return self._targets.get(platform)

    async def start(self, thread: ThreadKey, user_id: str, event_id: str | None) -> bool:
        """Record the hand-off; False when the thread already waits for a person."""
        if not await self._store.start_handoff(thread, user_id, event_id):
            return False
        metrics.HANDOFFS.labels(thread.platform).inc()
        log.info("thread %s/%s handed to a person", thread.platform, thread.thread)
        return True

    async def end(self, thread: ThreadKey, user_id: str) -> bool:
        """Give the thread back to the bot; False when it was not handed off."""
        ended = await self._store.end_handoff(thread, user_id)
        if ended:
            log.info("thread %s/%s back with the bot", thread.platform, thread.thread)
        return ended

    async def thread_of(self, platform: str, event_id: str, *, channel: str) -> ThreadKey | None:
        """The thread of answer `event_id`, if it exists and lives in `channel` (a "Back
        to the bot" press names the answer that was handed off)."""
        turn = await self._store.get_turn(platform, event_id)
        if turn is None or turn.reply_channel != channel:
            return None
        return turn.thread

    async def gate(self, thread: ThreadKey, text: str) -> ThreadGate:
        """Whether a message in `thread` is answered, ignored (handed off) or a `resume`.

        Without a hand-off target for the platform nothing is looked up: hand-off is off
        there (also for threads handed off before the target was removed)."""
        if thread.platform not in self._targets or not await self._store.handoff_open(thread):
            return ThreadGate.ANSWER
        return ThreadGate.RESUME if is_resume(text) else ThreadGate.SILENT
