"""Where the bridge remembers things: which backend conversation each chat thread
continues, one row per answered question (a *turn*) for de-duplication and crash
recovery, and which thread each of the bot's reply messages belongs to.

The relay talks to the `Store` protocol only, so a Postgres implementation can be added
behind `open_store` later. `SQLiteStore` is the default. SQLite calls block, so every one
of them runs on a single dedicated worker thread that owns the only connection: the
event loop never waits on the disk, and statements never race each other inside one
process (across processes, SQLite's own locking plus a busy timeout takes over).

Message text is private: `question_text` / `answer_text` are dropped by the store itself
unless it was opened with `store_text=True` (`BRIDGE_STORE_TEXT`), so callers may always
pass them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlite_utils

from bridge.errors import ConfigError, StoreError
from bridge.model import Question, ThreadKey

log = logging.getLogger(__name__)

MEMORY = ":memory:"

# Seconds a statement waits for another process's write lock (`bridge run` and
# `bridge serve` may share one file) before failing; writes here take milliseconds.
BUSY_TIMEOUT_SECONDS = 5.0

# Error reasons are short explanations for people, not tracebacks; a cap keeps one
# runaway message from bloating every row that is read back during recovery.
MAX_ERROR_CHARS = 1000

UNSUPPORTED_URL_MESSAGE = (
    "DATABASE_URL: only sqlite:/// is supported in this version; postgres support is "
    "planned (use e.g. sqlite:///bridge.db or sqlite:////data/bridge.db)"
)

T = TypeVar("T")


class TurnStatus(StrEnum):
    """Life of one turn. `queued` and `streaming` are unfinished: a turn found in either
    at start-up belongs to a process that died, and its reply is marked interrupted."""

    QUEUED = "queued"
    STREAMING = "streaming"
    DONE = "done"
    ERROR = "error"
    INTERRUPTED = "interrupted"


UNFINISHED = (TurnStatus.QUEUED, TurnStatus.STREAMING)


@dataclass(frozen=True)
class Conversation:
    """The backend conversation a thread continues (`chatlogId` or `resp_…` id)."""

    backend: str
    conversation_id: str


@dataclass(frozen=True)
class Turn:
    """One accepted question and what became of its answer.

    `reply_channel` and `reply_message_ids` say where the reply was drawn, so a later
    process can edit it; times are epoch seconds; `question_text` and `answer_text` are
    None unless the store keeps text.
    """

    thread: ThreadKey
    event_id: str
    user_id: str
    correlation_id: str
    backend: str
    status: TurnStatus
    reply_channel: str | None
    reply_message_ids: tuple[str, ...]
    backend_message_id: str | None
    error: str | None
    question_text: str | None
    answer_text: str | None
    first_text_ms: int | None
    total_ms: int | None
    created_at: float
    updated_at: float

    @property
    def platform(self) -> str:
        return self.thread.platform


class Store(Protocol):
    """What the relay needs from storage; small enough to implement on Postgres."""

    async def get_conversation(self, thread: ThreadKey) -> Conversation | None:
        """The conversation this thread continues, or None for a new thread."""
        ...

    async def save_conversation(
        self, thread: ThreadKey, backend: str, conversation_id: str
    ) -> None:
        """Remember (or replace) the thread's conversation."""
        ...

    async def forget_conversation(self, thread: ThreadKey) -> None:
        """Drop the thread's conversation; its next question starts a new one."""
        ...

    async def claim_turn(
        self, question: Question, *, backend: str, status: str = TurnStatus.QUEUED
    ) -> bool:
        """Record a new turn; False when its (platform, event id) was already claimed."""
        ...

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
    ) -> bool:
        """Change the given fields of a turn; False when there is no such turn."""
        ...

    async def get_turn(self, platform: str, event_id: str) -> Turn | None: ...

    async def find_thread_by_reply(self, platform: str, message_id: str) -> ThreadKey | None:
        """The thread whose answer includes message `message_id` (any part of it, as
        recorded by `update_turn(reply_message_ids=…)`), or None. Message ids must be
        unique within the platform: Discord's are; Slack's are only unique per channel."""
        ...

    async def unfinished_turns(self) -> list[Turn]:
        """Turns still queued or streaming, oldest first (crash recovery)."""
        ...

    async def recent_turn_count(self, platform: str, user_id: str, since_epoch: float) -> int:
        """How many turns this user started since `since_epoch` (rate limiting)."""
        ...

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    async def close(self) -> None:
        """Release the database; safe to call twice."""
        ...


# --- DATABASE_URL -----------------------------------------------------------------------


def parse_database_url(database_url: str) -> str:
    """Turn `DATABASE_URL` into an SQLite file path (or `:memory:`).

    `sqlite:///relative.db` is relative to the working directory, `sqlite:////abs.db`
    is absolute (the fourth slash starts the path), `sqlite://:memory:` and
    `sqlite:///:memory:` are private in-memory databases for tests.

    Raises:
        ConfigError: for other schemes (Heroku's Postgres add-on sets `postgres://…`)
            or a URL without a path. The URL itself is never echoed: it may hold a
            password.
    """
    scheme, separator, rest = database_url.strip().partition("://")
    if not separator or scheme.lower() != "sqlite":
        raise ConfigError(UNSUPPORTED_URL_MESSAGE)
    if rest == MEMORY:
        return MEMORY
    if not rest.startswith("/"):
        raise ConfigError(
            "DATABASE_URL: an sqlite URL has no host; use sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:]
    if not path:
        raise ConfigError("DATABASE_URL: sqlite:/// needs a file name, e.g. sqlite:///bridge.db")
    if "?" in path:
        raise ConfigError("DATABASE_URL: sqlite URL options (?…) are not supported")
    return path


# --- schema migrations --------------------------------------------------------------------


def _v1_initial(db: sqlite_utils.Database) -> None:
    """Conversations keyed by thread; turns keyed by the platform's event id, which is
    what makes a redelivered event a no-op."""
    db.table("conversations").create(
        {
            "platform": str,
            "workspace": str,
            "channel": str,
            "thread": str,
            "backend": str,
            "conversation_id": str,
            "created_at": float,
            "updated_at": float,
        },
        pk=("platform", "workspace", "channel", "thread"),
        not_null={
            "platform",
            "workspace",
            "channel",
            "thread",
            "backend",
            "conversation_id",
            "created_at",
            "updated_at",
        },
    )
    turns = db.table("turns").create(
        {
            "platform": str,
            "event_id": str,
            "workspace": str,
            "channel": str,
            "thread": str,
            "user_id": str,
            "correlation_id": str,
            "backend": str,
            "status": str,
            "reply_channel": str,
            "reply_message_ids": str,  # JSON list of message ids
            "backend_message_id": str,
            "error": str,
            "question_text": str,
            "answer_text": str,
            "first_text_ms": int,
            "total_ms": int,
            "created_at": float,
            "updated_at": float,
        },
        pk=("platform", "event_id"),
        not_null={
            "platform",
            "event_id",
            "workspace",
            "channel",
            "thread",
            "user_id",
            "correlation_id",
            "backend",
            "status",
            "reply_message_ids",
            "created_at",
            "updated_at",
        },
        defaults={"reply_message_ids": "[]"},
    )
    turns.create_index(["status"], index_name="turns_by_status")
    turns.create_index(["platform", "user_id", "created_at"], index_name="turns_by_user_and_time")


# Records every reply message id of the turns the WHERE clause selects in
# `reply_messages`; ids already recorded are kept (a message belongs to one turn).
_RECORD_REPLY_MESSAGES = (
    "INSERT OR IGNORE INTO reply_messages (platform, message_id, workspace, channel, thread) "
    "SELECT turns.platform, ids.value, turns.workspace, turns.channel, turns.thread "
    "FROM turns, json_each(turns.reply_message_ids) AS ids WHERE "
)


def _v2_reply_messages(db: sqlite_utils.Database) -> None:
    """Reply message id → thread, so a reply to any part of an earlier answer (also after
    a restart) finds its conversation with one primary-key read instead of scanning the
    JSON lists in `turns`. Filled from the existing turns and safe to run twice (IF NOT
    EXISTS, OR IGNORE); malformed id lists (hand-edited rows) are skipped rather than
    failing the upgrade."""
    db.table("reply_messages").create(
        {"platform": str, "message_id": str, "workspace": str, "channel": str, "thread": str},
        pk=("platform", "message_id"),
        not_null={"platform", "message_id", "workspace", "channel", "thread"},
        if_not_exists=True,
    )
    db.execute(_RECORD_REPLY_MESSAGES + "json_valid(turns.reply_message_ids)")


# Version N is MIGRATIONS[N - 1]. Append only: a released step never changes, because
# databases in the field have already run it.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1_initial, _v2_reply_messages]


def _migrate(db: sqlite_utils.Database) -> int:
    """Apply the pending migrations in one write transaction and return the version.

    BEGIN IMMEDIATE takes the write lock before the version is read, so two processes
    starting together cannot both apply the same step.
    """
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at FLOAT NOT NULL)"
        )
        (current,) = db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ).fetchone()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database schema is at version {current}, newer than this bridge knows "
                f"({len(MIGRATIONS)}); upgrade the bridge or use another DATABASE_URL"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            MIGRATIONS[version - 1](db)
            db.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            log.info("database schema migrated to version %d", version)
        db.conn.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    return max(current, len(MIGRATIONS))


def _connect(path: str) -> sqlite_utils.Database:
    """Open the connection (on the worker thread that will own it) and tune it."""
    if path != MEMORY:
        # abspath first, so a `..` in the URL does not create the directory it leaves.
        Path(os.path.abspath(path)).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        db = sqlite_utils.Database(conn, execute_plugins=False)
        # WAL lets readers (a second process, the sqlite3 shell) work during writes;
        # synchronous=NORMAL is WAL's recommended pairing: durable across crashes of the
        # process, and a power cut can lose at most the last few commits, never corrupt.
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()  # a file that is not a database: do not leak the handle
        raise
    return db


# --- the SQLite store ---------------------------------------------------------------------


_TURN_COLUMNS = (
    "platform, event_id, workspace, channel, thread, user_id, correlation_id, backend, "
    "status, reply_channel, reply_message_ids, backend_message_id, error, question_text, "
    "answer_text, first_text_ms, total_ms, created_at, updated_at"
)


def _turn_from_row(row: dict[str, Any]) -> Turn:
    return Turn(
        thread=ThreadKey(row["platform"], row["workspace"], row["channel"], row["thread"]),
        event_id=row["event_id"],
        user_id=row["user_id"],
        correlation_id=row["correlation_id"],
        backend=row["backend"],
        status=TurnStatus(row["status"]),
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


def _thread_params(thread: ThreadKey) -> tuple[str, str, str, str]:
    return (thread.platform, thread.workspace, thread.channel, thread.thread)


_THREAD_WHERE = "platform = ? AND workspace = ? AND channel = ? AND thread = ?"


class SQLiteStore:
    """`Store` on one SQLite file; open it with `open_store`.

    Attributes:
        path: the database file (or `:memory:`).
        store_text: whether question and answer text are kept.
        schema_version: the schema version after the start-up migration.
    """

    def __init__(self, path: str, *, store_text: bool = False) -> None:
        self.path = path
        self.store_text = store_text
        self.schema_version = 0
        # One worker thread: it owns the connection, and serializes every statement.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-store")
        self._db: sqlite_utils.Database | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: str, *, store_text: bool = False) -> SQLiteStore:
        """Connect and migrate on the worker thread.

        Raises:
            StoreError: the file cannot be opened or migrated.
        """
        store = cls(path, store_text=store_text)
        try:
            store.schema_version = await store._call(store._connect_and_migrate)
        except BaseException:
            await store.close()
            raise
        return store

    # -- worker-thread plumbing ---------------------------------------------------------

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(*args)` on the worker thread; sqlite3 errors become StoreError."""
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, work, args)

    def _guarded(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return work(*args)
        except sqlite3.Error as exc:
            raise StoreError(f"database error ({self.path}): {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc.strerror}") from exc

    def _connect_and_migrate(self) -> int:
        self._db = _connect(self.path)
        return _migrate(self._db)

    def _require_db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise StoreError("the store is not connected")
        return self._db

    def _query_sync(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return list(self._require_db().query(sql, params))

    def _execute_sync(self, sql: str, params: Sequence[Any]) -> int:
        return self._require_db().execute(sql, params).rowcount

    def _update_turn_sync(
        self, sql: str, params: Sequence[Any], turn_key: tuple[str, str], index_replies: bool
    ) -> int:
        """The turn update and, when its reply ids changed, their `reply_messages` rows,
        in one transaction: the index never disagrees with the turn."""
        db = self._require_db()
        with db.atomic():
            updated = db.execute(sql, params).rowcount
            if updated and index_replies:
                db.execute(
                    _RECORD_REPLY_MESSAGES + "turns.platform = ? AND turns.event_id = ?",
                    turn_key,
                )
        return updated

    async def _query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return await self._call(self._query_sync, sql, params)

    async def _execute(self, sql: str, *params: Any) -> int:
        """Run one write statement (committed at once); return the affected row count."""
        return await self._call(self._execute_sync, sql, params)

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

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
        self, question: Question, *, backend: str, status: str = TurnStatus.QUEUED
    ) -> bool:
        """Atomic: INSERT OR IGNORE on the (platform, event_id) key, so of any number of
        concurrent claims for one event (in this process or another) exactly one wins."""
        now = time.time()
        inserted = await self._execute(
            "INSERT OR IGNORE INTO turns (platform, event_id, workspace, channel, thread, "
            "user_id, correlation_id, backend, status, question_text, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            question.thread.platform,
            question.event_id,
            question.thread.workspace,
            question.thread.channel,
            question.thread.thread,
            question.user_id,
            question.correlation_id,
            backend,
            TurnStatus(status).value,
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
    ) -> bool:
        """Only the fields given (not None) change; `updated_at` always moves."""
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
        }
        if self.store_text:
            fields.update(question_text=question_text, answer_text=answer_text)
        changes = {name: value for name, value in fields.items() if value is not None}
        changes["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in changes)
        updated = await self._call(
            self._update_turn_sync,
            f"UPDATE turns SET {assignments} WHERE platform = ? AND event_id = ?",
            (*changes.values(), platform, event_id),
            (platform, event_id),
            reply_message_ids is not None,
        )
        return updated == 1

    async def get_turn(self, platform: str, event_id: str) -> Turn | None:
        rows = await self._query(
            f"SELECT {_TURN_COLUMNS} FROM turns WHERE platform = ? AND event_id = ?",
            platform,
            event_id,
        )
        return _turn_from_row(rows[0]) if rows else None

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

    async def unfinished_turns(self) -> list[Turn]:
        rows = await self._query(
            f"SELECT {_TURN_COLUMNS} FROM turns "
            f"WHERE status IN ({', '.join('?' * len(UNFINISHED))}) ORDER BY created_at",
            *(status.value for status in UNFINISHED),
        )
        return [_turn_from_row(row) for row in rows]

    async def recent_turn_count(self, platform: str, user_id: str, since_epoch: float) -> int:
        rows = await self._query(
            "SELECT COUNT(*) AS n FROM turns "
            "WHERE platform = ? AND user_id = ? AND created_at >= ?",
            platform,
            user_id,
            since_epoch,
        )
        return int(rows[0]["n"])

    # -- lifecycle ----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._query("SELECT 1 AS ok")

    async def close(self) -> None:
        """Close the connection on its own thread, then let the thread end. Statements
        already submitted run first (the worker takes them in order)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_sync)
        finally:
            self._executor.shutdown(wait=False)


async def open_store(database_url: str, *, store_text: bool = False) -> Store:
    """Open the store named by `DATABASE_URL`, migrating its schema first.

    Raises:
        ConfigError: the URL is not a supported database URL.
        StoreError: the database cannot be opened or migrated.
    """
    path = parse_database_url(database_url)
    return await SQLiteStore.open(path, store_text=store_text)


async def migrate_database(database_url: str) -> int:
    """Create or upgrade the schema (`bridge migrate`); return the schema version.

    Idempotent: running it again applies nothing and reports the same version.
    """
    store = await SQLiteStore.open(parse_database_url(database_url))
    try:
        return store.schema_version
    finally:
        await store.close()
