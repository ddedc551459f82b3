"""`Store` on Postgres, for several processes (dynos) sharing one database.

asyncpg is asyncio-native, so statements run on the event loop through a small pool of
connections; no worker thread is needed. The SQL itself is shared with SQLite
(`bridge.store.sql`): only placeholders (`?` → `$n`) and the JSON expansion differ.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from bridge.errors import StoreError
from bridge.store.advisory import AdvisoryLocks, live_owners
from bridge.store.base import check_schema_version
from bridge.store.quality import (
    ACTIVE_HANDOFF_INDEX_SQL,
    FEEDBACK_SCHEMA_SQL,
    HANDOFFS_SCHEMA_SQL,
    VOTES_BY_TIME_INDEX_SQL,
)
from bridge.store.sql import SQLStore, Statement

log = logging.getLogger(__name__)

# Connections per process. The relay's statements take milliseconds, and small plans
# (Heroku essential-0 allows 20 connections) must fit several dynos plus `bridge check`.
POOL_SIZE = 5
CONNECT_TIMEOUT_SECONDS = 10.0  # an unreachable host fails start-up readably, not never
# A statement that takes longer than this means a sick database: fail the one answer
# (it is shown as an error) rather than hang it.
COMMAND_TIMEOUT_SECONDS = 15.0
# Held (transaction-level) while migrating, so dynos starting together migrate in turn.
# Any fixed number works; this one is "brdg" in ASCII.
MIGRATION_LOCK_KEY = 0x62726467

# What asyncpg raises for a database that fails: server errors, a lost or refused
# connection, a statement past COMMAND_TIMEOUT_SECONDS.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

T = TypeVar("T")

# Version N is MIGRATIONS[N - 1], numbered like SQLite's. Append only. Postgres support
# began at version 3, so steps 1-3 always run together on an empty database.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE conversations (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL,
        thread TEXT NOT NULL, backend TEXT NOT NULL, conversation_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread)
    );
    CREATE TABLE turns (
        platform TEXT NOT NULL, event_id TEXT NOT NULL, workspace TEXT NOT NULL,
        channel TEXT NOT NULL, thread TEXT NOT NULL, user_id TEXT NOT NULL,
        correlation_id TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL,
        reply_channel TEXT, reply_message_ids TEXT NOT NULL DEFAULT '[]',
        backend_message_id TEXT, error TEXT, question_text TEXT, answer_text TEXT,
        first_text_ms BIGINT, total_ms BIGINT,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, event_id)
    );
    CREATE INDEX turns_by_status ON turns (status);
    CREATE INDEX turns_by_user_and_time ON turns (platform, user_id, created_at);
    """,
    """
    CREATE TABLE reply_messages (
        platform TEXT NOT NULL, message_id TEXT NOT NULL, workspace TEXT NOT NULL,
        channel TEXT NOT NULL, thread TEXT NOT NULL,
        PRIMARY KEY (platform, message_id)
    );
    """,
    """
    ALTER TABLE turns ADD COLUMN owner TEXT;
    CREATE TABLE owners (
        id TEXT PRIMARY KEY, last_seen DOUBLE PRECISION NOT NULL,
        stopped BOOLEAN NOT NULL DEFAULT FALSE
    );
    """,
    # 4: votes and hand-offs (the statements are shared with SQLite), answer sources.
    ";\n".join(
        (
            FEEDBACK_SCHEMA_SQL,
            HANDOFFS_SCHEMA_SQL,
            ACTIVE_HANDOFF_INDEX_SQL,
            VOTES_BY_TIME_INDEX_SQL,
            "ALTER TABLE turns ADD COLUMN sources TEXT",
        )
    ),
    # 5: Slack OAuth installations (sealed) and OAuth states.
    """
    CREATE TABLE slack_installations (
        enterprise_id TEXT NOT NULL, team_id TEXT NOT NULL, bot_user_id TEXT NOT NULL,
        sealed TEXT NOT NULL, installed_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (enterprise_id, team_id)
    );
    CREATE TABLE slack_oauth_states (
        state TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL
    );
    """,
]


async def _migrate(conn: asyncpg.Connection) -> int:
    """Apply the pending migrations in one transaction and return the version; a
    failed step leaves the schema as it was (Postgres DDL is transactional)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        check_schema_version(current, len(MIGRATIONS))
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                version,
                time.time(),
            )
            log.info("database schema migrated to version %d", version)
    return max(current, len(MIGRATIONS))


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders as Postgres's `$1, $2, …` (the shared SQL has no literal `?`)."""
    first, *rest = sql.split("?")
    return first + "".join(f"${number}{part}" for number, part in enumerate(rest, 1))


def _row_count(status: str) -> int:
    """Affected rows from a command status such as `INSERT 0 1` or `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])


def describe(database_url: str) -> str:
    """Host and database name for messages: never the user or password."""
    parts = urlsplit(database_url)
    return f"postgres {parts.hostname or 'localhost'}{parts.path}"


class PostgresStore(SQLStore):
    """`Store` on a Postgres database; open it with `open_store`."""

    record_replies_sql = (
        "INSERT INTO reply_messages (platform, message_id, workspace, channel, thread) "
        "SELECT turns.platform, ids.value, turns.workspace, turns.channel, turns.thread "
        "FROM turns, jsonb_array_elements_text(turns.reply_message_ids::jsonb) AS ids(value) "
        "WHERE turns.platform = ? AND turns.event_id = ? ON CONFLICT DO NOTHING"
    )

    def __init__(self, database_url: str, *, store_text: bool = False) -> None:
        super().__init__(store_text=store_text)
        self._url = database_url
        self._where = describe(database_url)
        self._pool: asyncpg.Pool | None = None
        self._locks = AdvisoryLocks(database_url, self._where)

    @classmethod
    async def open(cls, database_url: str, *, store_text: bool = False) -> PostgresStore:
        """Connect the pool and migrate.

        Raises:
            StoreError: the database cannot be reached or migrated.
        """
        store = cls(database_url, store_text=store_text)
        try:
            store._pool = await asyncpg.create_pool(
                database_url,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
            )
            store.schema_version = await store._run(_migrate)
        except (*_DATABASE_ERRORS, ValueError) as exc:  # ValueError: a malformed URL
            await store.close()
            raise StoreError(f"cannot open database ({store._where}): {exc}") from exc
        except BaseException:
            await store.close()
            raise
        return store

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `work` on a pooled connection; database failures become StoreError."""
        self._require_open()
        if self._pool is None:
            raise StoreError("the store is not connected")
        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except _DATABASE_ERRORS as exc:
            raise StoreError(f"database error ({self._where}): {exc}") from exc

    async def _query(self, sql: str, *params: Any) -> Sequence[Mapping[str, Any]]:
        return await self._run(lambda conn: conn.fetch(numbered(sql), *params))

    async def _execute_atomically(self, statements: Sequence[Statement]) -> list[int]:
        async def work(conn: asyncpg.Connection) -> list[int]:
            async with conn.transaction():
                return [
                    _row_count(await conn.execute(numbered(sql), *params))
                    for sql, params in statements
                ]

        return await self._run(work)

    # -- process locks: session advisory locks on connections of their own ------------

    async def hold_process_lock(self, owner: str) -> None:
        self._require_open()
        await self._locks.hold(owner)

    async def keep_process_lock(self, owner: str) -> bool:
        self._require_open()
        return await self._locks.keep(owner)

    async def release_process_lock(self, owner: str) -> None:
        await self._locks.release(owner)

    async def live_owners(self, owners: Collection[str]) -> set[str]:
        return await self._run(lambda conn: live_owners(conn, owners))

    async def close(self) -> None:
        """Close the pool; statements in flight finish first. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._locks.close()
        if self._pool is not None:
            await self._pool.close()
