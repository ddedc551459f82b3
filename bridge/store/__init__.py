"""Where the bridge remembers things: which backend conversation each chat thread
continues, one row per answered question (a *turn*) for de-duplication and crash
recovery, which thread each of the bot's reply messages belongs to, and which bridge
processes are alive.

The relay talks to the `Store` protocol only. `DATABASE_URL` picks the database:
`sqlite:///…` (the default, `SQLiteStore`) or `postgres://…` (`PostgresStore`, for
several processes sharing one database; needs the `postgres` extra, asyncpg).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.errors import ConfigError, StoreError
from bridge.store.base import (
    LOCK_HELD_LAST_SEEN,
    MAX_ERROR_CHARS,
    UNFINISHED,
    Conversation,
    OwnerRecord,
    Store,
    Turn,
    TurnStatus,
    is_postgres_url,
    parse_database_url,
)
from bridge.store.quality import ReportData, ReportTurn, Vote, VoteValue
from bridge.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from bridge.store.postgres import PostgresStore

__all__ = [
    "LOCK_HELD_LAST_SEEN",
    "MAX_ERROR_CHARS",
    "UNFINISHED",
    "Conversation",
    "OwnerRecord",
    "ReportData",
    "ReportTurn",
    "SQLiteStore",
    "Store",
    "StoreError",
    "Turn",
    "TurnStatus",
    "Vote",
    "VoteValue",
    "is_postgres_url",
    "migrate_database",
    "open_store",
    "parse_database_url",
]

POSTGRES_NEEDS_ASYNCPG = (
    "DATABASE_URL: postgres:// needs the asyncpg package; "
    "install the bridge with: pip install '.[postgres]'"
)


async def _open(database_url: str, *, store_text: bool) -> SQLiteStore | PostgresStore:
    if not is_postgres_url(database_url):
        return await SQLiteStore.open(parse_database_url(database_url), store_text=store_text)
    try:
        from bridge.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:  # asyncpg is an optional extra: SQLite needs none
        if exc.name != "asyncpg":
            raise
        raise ConfigError(POSTGRES_NEEDS_ASYNCPG) from exc
    return await PostgresStore.open(database_url.strip(), store_text=store_text)


async def open_store(database_url: str, *, store_text: bool = False) -> Store:
    """Open the store named by `DATABASE_URL`, migrating its schema first.

    Raises:
        ConfigError: the URL is not a supported database URL.
        StoreError: the database cannot be opened or migrated.
    """
    return await _open(database_url, store_text=store_text)


async def migrate_database(database_url: str) -> int:
    """Create or upgrade the schema (`bridge migrate`); return the schema version.

    Idempotent: running it again applies nothing and reports the same version.
    """
    store = await _open(database_url, store_text=False)
    try:
        return store.schema_version
    finally:
        await store.close()
