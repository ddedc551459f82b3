"""The store logic both databases share, written once.

Statements use `?` placeholders and SQL that SQLite and Postgres both accept (`ON
CONFLICT`, `TRUE`/`FALSE`, `excluded.`); a dialect subclass says how to run them and
supplies the one statement that differs (expanding a JSON list of reply ids).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from bridge.errors import StoreError
from bridge.model import Question, ThreadKey
from bridge.store.base import (
    LOCK_HELD_LAST_SEEN,
    MAX_ERROR_CHARS,
    UNFINISHED,
    Conversation,
    OwnerRecord,
    Turn,
    TurnStatus,
)
from bridge.store.installs import InstallationsSQL
from bridge.store.quality import QualityStore, sources_json

Statement = tuple[str, Sequence[Any]]

TURN_COLUMNS = (
    "platform, event_id, workspace, channel, thread, user_id, correlation_id, backend, "
    "status, owner, reply_channel, reply_message_ids, backend_message_id, error, "
    "question_text, answer_text, first_text_ms, total_ms, created_at, updated_at"
)

_THREAD_WHERE = "platform = ? AND workspace = ? AND channel = ? AND thread = ?"
_UNFINISHED_IN = f"({', '.join('?' * len(UNFINISHED))})"

# Unfinished turns of other processes (or of none: from before owners were recorded),
# with their owner's row; `turns_by_status` keeps this cheap however many turns are done.
_UNFINISHED_TURNS = (
    f"SELECT {TURN_COLUMNS}, owners.last_seen AS owner_last_seen, "
    "owners.stopped AS owner_stopped FROM turns LEFT JOIN owners ON owners.id = turns.owner "
    f"WHERE turns.status IN {_UNFINISHED_IN} AND (turns.owner IS NULL OR turns.owner <> ?) "
    "ORDER BY turns.created_at"
)


def turn_from_row(row: Mapping[str, Any]) -> Turn:
    return Turn(
        thread=ThreadKey(row["platform"], row["workspace"], row["channel"], row["thread"]),
        event_id=row["event_id"],
        user_id=row["user_id"],
        correlation_id=row["correlation_id"],
        backend=row["backend"],
        status=TurnStatus(row["status"]),
        owner=row["owner"],
        reply_channel=row["reply_channel"],
        reply_message_ids=tuple(json.loads(row["reply_message_ids"] or "[]")),
        backend_message_id=row["backend_message_id"],
        error=row["error"],
        question_text=row["question_text"],
        answer_text=row["answer_text"],
        first_text_ms=row["first_text_ms"],
        total_ms=row["total_ms"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _owner_from_row(row: Mapping[str, Any]) -> OwnerRecord | None:
    if row["owner_last_seen"] is None:
        return None
    return OwnerRecord(last_seen=row["owner_last_seen"], stopped=bool(row["owner_stopped"]))


def _thread_params(thread: ThreadKey) -> tuple[str, str, str, str]:
    return (thread.platform, thread.workspace, thread.channel, thread.thread)


class SQLStore(QualityStore, InstallationsSQL, ABC):
    """`Store` in SQL; subclasses run the statements on their database.

    Message text is private: `question_text` / `answer_text` are dropped here unless
    the store was opened with `store_text=True` (`BRIDGE_STORE_TEXT`), so callers may
    always pass them.

    Attributes:
        store_text: whether question and answer text are kept.
        schema_version: the schema version after the start-up migration.
    """

    # Records every reply message id of the turn given by two parameters (platform,
    # event id) in `reply_messages`; ids already recorded are kept.
    record_replies_sql: ClassVar[str]

    def __init__(self, *, store_text: bool) -> None:
        self.store_text = store_text
        self.schema_version = 0
        self._closed = False

    # -- what a dialect provides --------------------------------------------------------

    @abstractmethod
    async def _query(self, sql: str, *params: Any) -> Sequence[Mapping[str, Any]]:
        """Rows of one read statement."""

    @abstractmethod
    async def _execute_atomically(self, statements: Sequence[Statement]) -> list[int]:
        """Run write statements in one transaction; their affected row counts."""

    @abstractmethod
    async def close(self) -> None: ...

    def _require_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    async def _execute(self, sql: str, *params: Any) -> int:
        """Run one write statement (committed at once); return the affected row count."""
        (count,) = await self._execute_atomically([(sql, params)])
        return count

    # -- conversations ------------------------------------------------------------------

    async def get_conversation(self, thread: ThreadKey) -> Conversation | None:
        rows = await self._query(
            f"SELECT backend, conversation_id FROM conversations WHERE {_THREAD_WHERE}",
            *_thread_params(thread),
        )
        return Conversation(rows[0]["backend"], rows[0]["conversation_id"]) if rows else None

    async def save_conversation(
        self, thread: ThreadKey, backend: str, conversation_id: str
    ) -> None:
        now = time.time()
        await self._execute(
            "INSERT INTO conversations (platform, workspace, channel, thread, backend, "
            "conversation_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (platform, workspace, channel, thread) DO UPDATE SET "
            "backend = excluded.backend, conversation_id = excluded.conversation_id, "
            "updated_at = excluded.updated_at",
            *_thread_params(thread),
            backend,
            conversation_id,
            now,
            now,
        )

    async def forget_conversation(self, thread: ThreadKey) -> None:
        await self._execute(
            f"DELETE FROM conversations WHERE {_THREAD_WHERE}", *_thread_params(thread)
        )

    # -- turns --------------------------------------------------------------------------

    async def claim_turn(
        self,
        question: Question,
        *,
        backend: str,
        status: str = TurnStatus.QUEUED,
        owner: str | None = None,
    ) -> bool:
        """Atomic: ON CONFLICT DO NOTHING on the (platform, event_id) key, so of any
        number of concurrent claims for one event (in this process or another) exactly
        one wins."""
        now = time.time()
        inserted = await self._execute(
            "INSERT INTO turns (platform, event_id, workspace, channel, thread, user_id, "
            "correlation_id, backend, status, owner, question_text, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            question.thread.platform,
            question.event_id,
            question.thread.workspace,
            question.thread.channel,
            question.thread.thread,
            question.user_id,
            question.correlation_id,
            backend,
            TurnStatus(status).value,
            owner,
            question.text if self.store_text else None,
            now,
            now,
        )
        return inserted == 1

    async def update_turn(
        self,
        platform: str,
        event_id: str,
        *,
        status: str | None = None,
        reply_channel: str | None = None,
        reply_message_ids: Sequence[str] | None = None,
        backend_message_id: str | None = None,
        error: str | None = None,
        question_text: str | None = None,
        answer_text: str | None = None,
        first_text_ms: int | None = None,
        total_ms: int | None = None,
        sources: Sequence[str] | None = None,
    ) -> bool:
        """Only the fields given (not None) change; `updated_at` always moves. New reply
        ids are indexed in the same transaction: the index never disagrees with the turn."""
        fields: dict[str, Any] = {
            "status": TurnStatus(status).value if status is not None else None,
            "reply_channel": reply_channel,
            "reply_message_ids": (
                json.dumps(list(reply_message_ids)) if reply_message_ids is not None else None
            ),
            "backend_message_id": backend_message_id,
            "error": error[:MAX_ERROR_CHARS] if error is not None else None,
            "first_text_ms": first_text_ms,
            "total_ms": total_ms,
            "sources": sources_json(sources) if sources is not None else None,
        }
        if self.store_text:
            fields.update(question_text=question_text, answer_text=answer_text)
        changes = {name: value for name, value in fields.items() if value is not None}
        changes["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in changes)
        statements: list[Statement] = [
            (
                f"UPDATE turns SET {assignments} WHERE platform = ? AND event_id = ?",
                (*changes.values(), platform, event_id),
            )
        ]
        if reply_message_ids is not None:
            statements.append((self.record_replies_sql, (platform, event_id)))
        updated, *_ = await self._execute_atomically(statements)
        return updated == 1

    async def interrupt_turn(self, platform: str, event_id: str, reason: str) -> bool:
        updated = await self._execute(
            "UPDATE turns SET status = ?, error = ?, updated_at = ? "
            f"WHERE platform = ? AND event_id = ? AND status IN {_UNFINISHED_IN}",
            TurnStatus.INTERRUPTED.value,
            reason[:MAX_ERROR_CHARS],
            time.time(),
            platform,
            event_id,
            *(status.value for status in UNFINISHED),
        )
        return updated == 1

    async def get_turn(self, platform: str, event_id: str) -> Turn | None:
        rows = await self._query(
            f"SELECT {TURN_COLUMNS} FROM turns WHERE platform = ? AND event_id = ?",
            platform,
            event_id,
        )
        return turn_from_row(rows[0]) if rows else None

    async def find_thread_by_reply(self, platform: str, message_id: str) -> ThreadKey | None:
        rows = await self._query(
            "SELECT workspace, channel, thread FROM reply_messages "
            "WHERE platform = ? AND message_id = ?",
            platform,
            message_id,
        )
        if not rows:
            return None
        return ThreadKey(platform, rows[0]["workspace"], rows[0]["channel"], rows[0]["thread"])

    async def unfinished_turns(self, not_owner: str) -> list[tuple[Turn, OwnerRecord | None]]:
        rows = await self._query(
            _UNFINISHED_TURNS, *(status.value for status in UNFINISHED), not_owner
        )
        return [(turn_from_row(row), _owner_from_row(row)) for row in rows]

    # -- process liveness (the locks are the dialect's) -----------------------------------

    async def register_owner(self, owner: str) -> None:
        await self._record_owner(owner, last_seen=LOCK_HELD_LAST_SEEN, stopped=False)

    async def sign_off(self, owner: str) -> None:
        await self._record_owner(owner, last_seen=time.time(), stopped=True)

    async def _record_owner(self, owner: str, *, last_seen: float, stopped: bool) -> None:
        await self._execute(
            "INSERT INTO owners (id, last_seen, stopped) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, "
            "stopped = excluded.stopped",
            owner,
            last_seen,
            stopped,
        )

    @abstractmethod
    async def hold_process_lock(self, owner: str) -> None: ...

    @abstractmethod
    async def keep_process_lock(self, owner: str) -> bool: ...

    @abstractmethod
    async def release_process_lock(self, owner: str) -> None: ...

    @abstractmethod
    async def live_owners(self, owners: Collection[str]) -> set[str]: ...

    # -- lifecycle ----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._query("SELECT 1 AS ok")
