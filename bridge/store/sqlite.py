"""`Store` on one SQLite file: the default.

SQLite calls block, so every one of them runs on a single dedicated worker thread that
owns the only connection: the event loop never waits on the disk, and statements never
race each other inside one process (across processes, SQLite's own locking plus a busy
timeout takes over).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from bridge.errors import StoreError
from bridge.store.base import MEMORY, check_schema_version
from bridge.store.process_lock import FileLocks, LocalLocks
from bridge.store.quality import (
    ACTIVE_HANDOFF_INDEX_SQL,
    FEEDBACK_SCHEMA_SQL,
    HANDOFFS_SCHEMA_SQL,
    VOTES_BY_TIME_INDEX_SQL,
)
from bridge.store.sql import SQLStore, Statement

log = logging.getLogger(__name__)

# Seconds a statement waits for another process's write lock (a one-off `bridge
# migrate`, the sqlite3 shell) before failing; writes here take milliseconds.
BUSY_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


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


def _v3_turn_owners(db: sqlite_utils.Database) -> None:
    """Which process claimed each turn, and when each process was last seen alive, so
    crash recovery interrupts only the turns of processes that are gone (several
    processes may share one database). Earlier turns keep a NULL owner."""
    db.table("turns").add_column("owner", str)
    db.table("owners").create(
        {"id": str, "last_seen": float, "stopped": int},
        pk="id",
        not_null={"id", "last_seen", "stopped"},
        defaults={"stopped": 0},
    )


def _v4_feedback_and_handoffs(db: sqlite_utils.Database) -> None:
    """Votes on answers and hand-offs to a person (issue #13), plus the sources each
    answer showed (a JSON list of URLs), so a vote is stored with what it judged and
    `bridge report` can count answers without sources. Older turns keep NULL sources."""
    db.execute(FEEDBACK_SCHEMA_SQL)
    db.execute(HANDOFFS_SCHEMA_SQL)
    db.execute(ACTIVE_HANDOFF_INDEX_SQL)
    db.execute(VOTES_BY_TIME_INDEX_SQL)
    db.table("turns").add_column("sources", str)


def _v5_slack_installations(db: sqlite_utils.Database) -> None:
    """Slack OAuth distribution: one sealed (encrypted) installation per workspace, and
    the one-time `state` values that tie an OAuth redirect to the install that began it."""
    db.table("slack_installations").create(
        {
            "enterprise_id": str,
            "team_id": str,
            "bot_user_id": str,
            "sealed": str,
            "installed_at": float,
            "updated_at": float,
        },
        pk=("enterprise_id", "team_id"),
        not_null={
            "enterprise_id",
            "team_id",
            "bot_user_id",
            "sealed",
            "installed_at",
            "updated_at",
        },
    )
    db.table("slack_oauth_states").create(
        {"state": str, "expires_at": float}, pk="state", not_null={"state", "expires_at"}
    )


# Version N is MIGRATIONS[N - 1]. Append only: a released step never changes, because
# databases in the field have already run it. Postgres has the same numbered steps.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_reply_messages,
    _v3_turn_owners,
    _v4_feedback_and_handoffs,
    _v5_slack_installations,
]


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
        check_schema_version(current, len(MIGRATIONS))
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


# How long to wait between two tries at switching a new database file to WAL.
WAL_RETRY_SECONDS = 0.05


def _enable_wal(db: sqlite_utils.Database) -> None:
    """Switch the file to WAL mode, waiting up to `BUSY_TIMEOUT_SECONDS` for another
    process doing the same.

    The switch needs the file to itself. When two processes open the same new file at
    once (a deploy's old and new process, `serve` beside `run`), SQLite answers the
    second one "database is locked" at once instead of calling its busy handler, which
    would risk a deadlock between two readers that both want to write.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_RETRY_SECONDS)


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
        _enable_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()  # a file that is not a database: do not leak the handle
        raise
    return db


# --- the SQLite store ---------------------------------------------------------------------


class SQLiteStore(SQLStore):
    """`Store` on one SQLite file; open it with `open_store`.

    Attributes:
        path: the database file (or `:memory:`).
    """

    record_replies_sql = _RECORD_REPLY_MESSAGES + "turns.platform = ? AND turns.event_id = ?"

    def __init__(self, path: str, *, store_text: bool = False) -> None:
        super().__init__(store_text=store_text)
        self.path = path
        # One worker thread: it owns the connection, and serializes every statement.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-store")
        self._db: sqlite_utils.Database | None = None
        self._locks = LocalLocks() if path == MEMORY else FileLocks(path)

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
        self._require_open()
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

    def _execute_atomically_sync(self, statements: Sequence[Statement]) -> list[int]:
        db = self._require_db()
        with db.atomic():
            return [db.execute(sql, params).rowcount for sql, params in statements]

    async def _query(self, sql: str, *params: Any) -> Sequence[Mapping[str, Any]]:
        return await self._call(self._query_sync, sql, params)

    async def _execute_atomically(self, statements: Sequence[Statement]) -> list[int]:
        return await self._call(self._execute_atomically_sync, statements)

    # -- process locks: flock files beside the database (microseconds: no worker thread) --

    async def hold_process_lock(self, owner: str) -> None:
        self._require_open()
        self._locks.hold(owner)

    async def keep_process_lock(self, owner: str) -> bool:
        return True  # a file lock is only lost with the process

    async def release_process_lock(self, owner: str) -> None:
        self._locks.release(owner)

    async def live_owners(self, owners: Collection[str]) -> set[str]:
        return self._locks.live(owners)

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def close(self) -> None:
        """Close the connection on its own thread, then let the thread end. Statements
        already submitted run first (the worker takes them in order)."""
        if self._closed:
            return
        self._closed = True
        self._locks.close()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_sync)
        finally:
            self._executor.shutdown(wait=False)
