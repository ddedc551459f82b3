"""What the store keeps about answer quality: 👍/👎 votes with what they judged,
hand-offs of a thread to a person, and the rows `bridge report` summarizes.

The DDL and statements are shared by SQLite and Postgres (both accept the partial
unique index that allows one open hand-off per thread, and `ON CONFLICT`), so the mixin
only needs the dialect's `_query` / `_execute` from `SQLStore`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from bridge.model import ThreadKey

if TYPE_CHECKING:
    from bridge.store.base import Conversation, Turn

FEEDBACK_SCHEMA_SQL = """
CREATE TABLE feedback (
    platform TEXT NOT NULL, event_id TEXT NOT NULL, user_id TEXT NOT NULL,
    workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
    message_id TEXT, vote TEXT NOT NULL, reason TEXT,
    conversation_id TEXT, backend_message_id TEXT, sources TEXT,
    question_text TEXT, answer_text TEXT,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, event_id, user_id)
)"""
HANDOFFS_SCHEMA_SQL = """
CREATE TABLE handoffs (
    platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL,
    thread TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL, started_by TEXT NOT NULL,
    event_id TEXT, ended_at DOUBLE PRECISION, ended_by TEXT,
    PRIMARY KEY (platform, workspace, channel, thread, started_at)
)"""
# At most one open hand-off per thread: a second press (or a second process) is a no-op.
ACTIVE_HANDOFF_INDEX_SQL = (
    "CREATE UNIQUE INDEX handoffs_open ON handoffs (platform, workspace, channel, thread) "
    "WHERE ended_at IS NULL"
)
VOTES_BY_TIME_INDEX_SQL = "CREATE INDEX feedback_by_time ON feedback (updated_at)"

_THREAD_WHERE = "platform = ? AND workspace = ? AND channel = ? AND thread = ?"
_VOTE_COLUMNS = (
    "platform, event_id, user_id, workspace, channel, thread, message_id, vote, reason, "
    "conversation_id, backend_message_id, sources, question_text, answer_text, "
    "created_at, updated_at"
)


class VoteValue(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class Vote:
    """One person's vote on one answer (the turn `event_id`), with what it judged.

    `sources` are the URLs the answer showed; the texts are None unless the store keeps
    text (`BRIDGE_STORE_TEXT`). Times are epoch seconds.
    """

    thread: ThreadKey
    event_id: str
    user_id: str
    message_id: str | None
    vote: VoteValue
    reason: str | None
    conversation_id: str | None
    backend_message_id: str | None
    sources: tuple[str, ...]
    question_text: str | None
    answer_text: str | None
    created_at: float
    updated_at: float

    @property
    def platform(self) -> str:
        return self.thread.platform


@dataclass(frozen=True)
class ReportTurn:
    """What `bridge report` needs of one turn."""

    platform: str
    channel: str
    status: str
    replied: bool  # the bridge drew a reply (refusals only post a notice)
    first_text_ms: int | None
    total_ms: int | None
    source_count: int | None  # None: recorded before sources were kept


@dataclass(frozen=True)
class ReportData:
    """Rows of one report period: turns asked, votes cast and hand-offs started in it."""

    turns: list[ReportTurn]
    votes: list[tuple[str, str, str]]  # platform, channel, vote
    handoffs: list[tuple[str, str]]  # platform, channel


def sources_json(sources: Sequence[str]) -> str:
    return json.dumps(list(sources))


def _sources(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value else ()


def _vote_from_row(row: Mapping[str, Any]) -> Vote:
    return Vote(
        thread=ThreadKey(row["platform"], row["workspace"], row["channel"], row["thread"]),
        event_id=row["event_id"],
        user_id=row["user_id"],
        message_id=row["message_id"],
        vote=VoteValue(row["vote"]),
        reason=row["reason"],
        conversation_id=row["conversation_id"],
        backend_message_id=row["backend_message_id"],
        sources=_sources(row["sources"]),
        question_text=row["question_text"],
        answer_text=row["answer_text"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class QualityRecords(Protocol):
    """The part of `Store` that the feedback, hand-off and report features use."""

    async def get_turn(self, platform: str, event_id: str) -> Turn | None: ...

    async def get_vote(self, platform: str, event_id: str, user_id: str) -> Vote | None: ...

    async def record_vote(
        self, turn: Turn, user_id: str, vote: VoteValue, *, message_id: str | None
    ) -> Vote: ...

    async def set_vote_reason(
        self, platform: str, event_id: str, user_id: str, reason: str
    ) -> Vote | None: ...

    async def start_handoff(
        self, thread: ThreadKey, user_id: str, event_id: str | None
    ) -> bool: ...

    async def end_handoff(self, thread: ThreadKey, user_id: str) -> bool: ...

    async def handoff_open(self, thread: ThreadKey) -> bool: ...

    async def report_data(self, since: float) -> ReportData: ...


class QualityStore:
    """Votes, hand-offs and report rows in SQL; mixed into `SQLStore`."""

    store_text: bool

    if TYPE_CHECKING:  # provided by SQLStore

        async def _query(self, sql: str, *params: Any) -> Sequence[Mapping[str, Any]]: ...

        async def _execute(self, sql: str, *params: Any) -> int: ...

        async def get_conversation(self, thread: ThreadKey) -> Conversation | None: ...

    async def turn_sources(self, platform: str, event_id: str) -> tuple[str, ...]:
        rows = await self._query(
            "SELECT sources FROM turns WHERE platform = ? AND event_id = ?", platform, event_id
        )
        return _sources(rows[0]["sources"]) if rows else ()

    # -- votes --------------------------------------------------------------------------

    async def get_vote(self, platform: str, event_id: str, user_id: str) -> Vote | None:
        rows = await self._query(
            f"SELECT {_VOTE_COLUMNS} FROM feedback "
            "WHERE platform = ? AND event_id = ? AND user_id = ?",
            platform,
            event_id,
            user_id,
        )
        return _vote_from_row(rows[0]) if rows else None

    async def record_vote(
        self, turn: Turn, user_id: str, vote: VoteValue, *, message_id: str | None
    ) -> Vote:
        """Save (or change) `user_id`'s vote on `turn`, copying what the answer was:
        conversation, backend message id, sources and (when kept) the texts. A changed
        vote drops the reason given for the old one."""
        conversation = await self.get_conversation(turn.thread)
        sources = await self.turn_sources(turn.platform, turn.event_id)
        now = time.time()
        thread = turn.thread
        await self._execute(
            f"INSERT INTO feedback ({_VOTE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (platform, event_id, user_id) DO UPDATE SET "
            "reason = CASE WHEN feedback.vote = excluded.vote THEN feedback.reason END, "
            "vote = excluded.vote, message_id = excluded.message_id, "
            "updated_at = excluded.updated_at",
            thread.platform,
            turn.event_id,
            user_id,
            thread.workspace,
            thread.channel,
            thread.thread,
            message_id,
            vote.value,
            conversation.conversation_id if conversation is not None else None,
            turn.backend_message_id,
            sources_json(sources),
            turn.question_text if self.store_text else None,
            turn.answer_text if self.store_text else None,
            now,
            now,
        )
        recorded = await self.get_vote(thread.platform, turn.event_id, user_id)
        assert recorded is not None  # just written
        return recorded

    async def set_vote_reason(
        self, platform: str, event_id: str, user_id: str, reason: str
    ) -> Vote | None:
        """Attach a reason to an existing vote; None when there is no such vote."""
        updated = await self._execute(
            "UPDATE feedback SET reason = ?, updated_at = ? "
            "WHERE platform = ? AND event_id = ? AND user_id = ?",
            reason,
            time.time(),
            platform,
            event_id,
            user_id,
        )
        return await self.get_vote(platform, event_id, user_id) if updated else None

    # -- hand-offs ------------------------------------------------------------------------

    async def start_handoff(self, thread: ThreadKey, user_id: str, event_id: str | None) -> bool:
        """Open a hand-off for `thread`; False when one is already open."""
        inserted = await self._execute(
            "INSERT INTO handoffs (platform, workspace, channel, thread, started_at, "
            "started_by, event_id) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            *_thread_params(thread),
            time.time(),
            user_id,
            event_id,
        )
        return inserted == 1

    async def end_handoff(self, thread: ThreadKey, user_id: str) -> bool:
        """Close the thread's open hand-off; False when none was open."""
        updated = await self._execute(
            f"UPDATE handoffs SET ended_at = ?, ended_by = ? WHERE {_THREAD_WHERE} "
            "AND ended_at IS NULL",
            time.time(),
            user_id,
            *_thread_params(thread),
        )
        return updated > 0

    async def handoff_open(self, thread: ThreadKey) -> bool:
        rows = await self._query(
            f"SELECT 1 AS open FROM handoffs WHERE {_THREAD_WHERE} AND ended_at IS NULL",
            *_thread_params(thread),
        )
        return bool(rows)

    # -- report ---------------------------------------------------------------------------

    async def report_data(self, since: float) -> ReportData:
        """Turns created, votes last cast and hand-offs started at or after `since`."""
        turn_rows = await self._query(
            "SELECT platform, channel, status, reply_message_ids, first_text_ms, total_ms, "
            "sources FROM turns WHERE created_at >= ?",
            since,
        )
        vote_rows = await self._query(
            "SELECT platform, channel, vote FROM feedback WHERE updated_at >= ?", since
        )
        handoff_rows = await self._query(
            "SELECT platform, channel FROM handoffs WHERE started_at >= ?", since
        )
        turns = [
            ReportTurn(
                platform=row["platform"],
                channel=row["channel"],
                status=row["status"],
                replied=bool(json.loads(row["reply_message_ids"] or "[]")),
                first_text_ms=row["first_text_ms"],
                total_ms=row["total_ms"],
                source_count=len(_sources(row["sources"])) if row["sources"] else None,
            )
            for row in turn_rows
        ]
        return ReportData(
            turns=turns,
            votes=[(row["platform"], row["channel"], row["vote"]) for row in vote_rows],
            handoffs=[(row["platform"], row["channel"]) for row in handoff_rows],
        )


def _thread_params(thread: ThreadKey) -> tuple[str, str, str, str]:
    return (thread.platform, thread.workspace, thread.channel, thread.thread)
