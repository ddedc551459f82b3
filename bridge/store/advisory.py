"""Process locks for Postgres: the liveness signal the database guarantees.

Each bridge process holds a session-level advisory lock, keyed by its instance id, on a
connection of its own kept open for the life of the process. Postgres releases the lock
when that session ends — the process was killed, its dyno vanished, the network is gone
for good — so another process that can take the key knows at once that the owner is
gone. Needs a direct connection: a pooler in transaction mode (PgBouncer) would hand the
session to someone else.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection

import asyncpg

from bridge.errors import StoreError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 5.0  # a lock connection that cannot answer this is taken again
# Which of `owners` hold their key: trying a transaction-level lock conflicts with the
# owner's session lock; one it gets is released when the statement ends.
LIVE_KEYS_SQL = (
    "SELECT key FROM unnest($1::bigint[]) AS key WHERE NOT pg_try_advisory_xact_lock(key)"
)

_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def lock_key(owner: str) -> int:
    """The advisory lock key of process `owner` (a signed 64-bit hash of its id)."""
    digest = hashlib.blake2b(owner.encode(), digest_size=8, person=b"bridge-owner").digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLocks:
    """The session locks this process holds, one connection each."""

    def __init__(self, database_url: str, where: str) -> None:
        self._url = database_url
        self._where = where
        self._held: dict[str, asyncpg.Connection] = {}

    async def hold(self, owner: str) -> None:
        """Take `owner`'s key on a new connection (no-op when held).

        Raises:
            StoreError: no connection, or the key is taken (a live process, same id).
        """
        if owner in self._held and not self._held[owner].is_closed():
            return
        try:
            conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_SECONDS)
        except (*_ERRORS, ValueError) as exc:
            raise StoreError(f"cannot hold the process lock ({self._where}): {exc}") from exc
        try:
            taken = await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(owner))
        except _ERRORS as exc:
            await conn.close()
            raise StoreError(f"cannot hold the process lock ({self._where}): {exc}") from exc
        if not taken:
            await conn.close()
            raise StoreError(f"the process lock of {owner} is held by another session")
        self._held[owner] = conn

    async def keep(self, owner: str) -> bool:
        """Ping `owner`'s lock connection; take the key again on a new one if it is lost."""
        conn = self._held.get(owner)
        if conn is not None and not conn.is_closed():
            try:
                await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_SECONDS)
                return True
            except _ERRORS:
                conn.terminate()
        log.warning("the process lock connection was lost; taking the lock again")
        self._held.pop(owner, None)
        await self.hold(owner)
        return False

    async def release(self, owner: str) -> None:
        """Close `owner`'s lock connection: the session, and so the lock, ends."""
        conn = self._held.pop(owner, None)
        if conn is None:
            return
        try:
            await conn.close(timeout=PING_TIMEOUT_SECONDS)
        except _ERRORS:
            conn.terminate()

    async def close(self) -> None:
        for owner in list(self._held):
            await self.release(owner)


async def live_owners(conn: asyncpg.Connection, owners: Collection[str]) -> set[str]:
    """Which of `owners` hold their key now, asked on any (pooled) connection."""
    keys = {lock_key(owner): owner for owner in owners}
    if not keys:
        return set()
    rows = await conn.fetch(LIVE_KEYS_SQL, list(keys))
    return {keys[row["key"]] for row in rows}
