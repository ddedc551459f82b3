"""What a 👍/👎, a "what was wrong?" note or a hand-off press does, whatever the platform.

Adapters turn a button press into one call here and show the returned text privately to
the person who pressed (Slack ephemeral message, Discord ephemeral response). Every
press is checked against the store: the answer must exist, have ended as `done`, and the
pressed message must be one of its reply messages in its channel, so a forged or stale
id gets a clear sentence instead of a vote on something else.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

from bridge import metrics
from bridge.feedback.webhook import FeedbackWebhook
from bridge.model import ThreadKey
from bridge.store import Store, Turn, TurnStatus, Vote, VoteValue

log = logging.getLogger(__name__)

# A "what was wrong?" note is for people reading the report, not an essay; longer text
# is cut here (and the person told), whatever the platform's own input limit.
MAX_REASON_CHARS = 1000

UNKNOWN_ANSWER_TEXT = (
    "I can't find that answer any more (it may have been removed), so nothing was saved."
)
NOT_VOTABLE_TEXT = "Only complete answers can be rated; nothing was saved."
VOTE_THANKS = {
    VoteValue.UP: "Thanks for the 👍 — glad it helped.",
    VoteValue.DOWN: "Thanks for the 👎 — that helps us improve.",
}
VOTE_CHANGED = "Changed your vote to {emoji}."
VOTE_SAME = "You already gave this answer a {emoji}."
EMOJI = {VoteValue.UP: "👍", VoteValue.DOWN: "👎"}
REASON_SAVED_TEXT = "Thanks — your note was saved with your 👎."
REASON_CUT_TEXT = (
    "Thanks — your note was saved with your 👎, cut to its first {limit:,} characters "
    "(the limit; yours had {length:,})."
)
REASON_WITHOUT_VOTE_TEXT = "Your vote on that answer was not found, so the note was not saved."


@dataclass(frozen=True)
class VoteResult:
    """What a press did: the private acknowledgement, and whether to offer the "what
    was wrong?" box (a 👎 that was saved)."""

    text: str
    ask_reason: bool = False
    vote: Vote | None = None


class FeedbackService:
    """Records votes and notes, counts them, and forwards them to the webhook."""

    def __init__(self, store: Store, webhook: FeedbackWebhook | None = None) -> None:
        self._store = store
        self._webhook = webhook

    async def answer_for(
        self, platform: str, event_id: str, *, channel: str, message_id: str
    ) -> Turn | str:
        """The answered turn a press on `message_id` in `channel` refers to, or the
        sentence saying why it cannot be rated."""
        turn = await self._store.get_turn(platform, event_id)
        if (
            turn is None
            or turn.reply_channel != channel
            or message_id not in turn.reply_message_ids
        ):
            return UNKNOWN_ANSWER_TEXT
        if turn.status is not TurnStatus.DONE:
            return NOT_VOTABLE_TEXT
        return turn

    async def vote(
        self,
        platform: str,
        event_id: str,
        user_id: str,
        vote: VoteValue,
        *,
        channel: str,
        message_id: str,
    ) -> VoteResult:
        turn = await self.answer_for(platform, event_id, channel=channel, message_id=message_id)
        if isinstance(turn, str):
            log.info("vote on %s/%s refused: %s", platform, event_id, turn)
            return VoteResult(turn)
        previous = await self._store.get_vote(platform, event_id, user_id)
        recorded = await self._store.record_vote(turn, user_id, vote, message_id=message_id)
        ask = vote is VoteValue.DOWN
        if previous is not None and previous.vote is vote:
            return VoteResult(VOTE_SAME.format(emoji=EMOJI[vote]), ask_reason=ask, vote=recorded)
        metrics.FEEDBACK.labels(platform, vote.value).inc()
        self._forward("vote", recorded, previous.vote if previous is not None else None)
        text = VOTE_CHANGED.format(emoji=EMOJI[vote]) if previous is not None else VOTE_THANKS[vote]
        return VoteResult(text, ask_reason=ask, vote=recorded)

    async def give_reason(self, platform: str, event_id: str, user_id: str, reason: str) -> str:
        """Save the "what was wrong?" note on the person's vote; the acknowledgement."""
        text = reason.strip()
        kept = text[:MAX_REASON_CHARS]
        if not kept:
            return REASON_SAVED_TEXT
        recorded = await self._store.set_vote_reason(platform, event_id, user_id, kept)
        if recorded is None:
            return REASON_WITHOUT_VOTE_TEXT
        self._forward("reason", recorded, None)
        if len(text) > MAX_REASON_CHARS:
            return REASON_CUT_TEXT.format(limit=MAX_REASON_CHARS, length=len(text))
        return REASON_SAVED_TEXT

    def _forward(self, kind: str, vote: Vote, previous: VoteValue | None) -> None:
        if self._webhook is not None:
            self._webhook.send(webhook_payload(kind, vote, previous))


def webhook_payload(kind: str, vote: Vote, previous: VoteValue | None) -> dict[str, Any]:
    """The JSON a receiver gets (documented in docs/operations.md)."""
    thread: ThreadKey = vote.thread
    return {
        "type": "bridge.feedback",
        "kind": kind,
        "platform": thread.platform,
        "workspace": thread.workspace,
        "channel": thread.channel,
        "thread": thread.thread,
        "user": vote.user_id,
        "vote": vote.vote.value,
        "previous_vote": previous.value if previous is not None else None,
        "reason": vote.reason,
        "at": datetime.datetime.fromtimestamp(vote.updated_at, datetime.UTC).isoformat(),
        "event_id": vote.event_id,
        "message_id": vote.message_id,
        "conversation_id": vote.conversation_id,
        "backend_message_id": vote.backend_message_id,
        "sources": list(vote.sources),
        "question": vote.question_text,
        "answer": vote.answer_text,
    }
