"""Liveness: which processes sharing the database are alive, by a signal that dies with
the process.

Each process holds a process lock from `start` to `close` — a `flock` on a file beside a
SQLite database, a session advisory lock in Postgres — that the operating system or
the database releases the moment the process ends, however it ends. A turn left
unfinished by a process whose lock is free is an orphan: no waiting for a heartbeat to
go silent. Every `interval` seconds the process checks its own lock (a dropped Postgres
connection is re-taken); `bridge.relay.recovery` sweeps for orphans as often.

Bridges from before process locks prove they are alive by heartbeats instead; while a
deploy upgrades them, their turns are judged the old way (`LEGACY_OWNER_TIMEOUT_SECONDS`
of silence), and they in turn never take a lock holder for silent (see
`bridge.store.LOCK_HELD_LAST_SEEN`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from bridge.errors import StoreError
from bridge.store import OwnerRecord, Store, Turn
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

# How often a running process looks for orphans (and checks its own lock): a crash
# elsewhere is noticed within this many seconds; each check is one indexed query.
LIVENESS_CHECK_SECONDS = 2.0
# A bridge from before process locks beat every 15 s and was taken for dead after 45 s.
LEGACY_OWNER_TIMEOUT_SECONDS = 45.0


class Liveness:
    """This process's lock and its view of the other processes."""

    def __init__(
        self,
        store: Store,
        *,
        instance_id: str,
        interval: float = LIVENESS_CHECK_SECONDS,
    ) -> None:
        self._store = store
        self._instance_id = instance_id
        self._interval = interval
        self._tasks = TaskOwner("liveness")
        self._started = False

    async def start(self) -> None:
        """Take the process lock, then record this process, before any question is
        claimed: other processes leave our turns alone while we live.

        Raises:
            StoreError: the lock cannot be taken or the process not recorded.
        """
        await self._store.hold_process_lock(self._instance_id)
        await self._store.register_owner(self._instance_id)
        self._tasks.spawn(self._keep_lock(), name="relay-liveness")
        self._started = True

    async def orphans(self) -> list[Turn]:
        """Unfinished turns, oldest first, whose process is gone. A lock holder found
        gone is signed off on its behalf (its row says so; later checks skip its lock)."""
        rows = await self._store.unfinished_turns(self._instance_id)
        lock_holders = {
            turn.owner
            for turn, owner in rows
            if turn.owner is not None and owner is not None and _judged_by_lock(owner)
        }
        alive = await self._store.live_owners(lock_holders) if lock_holders else set()
        for gone in lock_holders - alive:
            log.info("process %s is gone (its lock is free)", gone)
            await self._store.sign_off(gone)
        cutoff = time.time() - LEGACY_OWNER_TIMEOUT_SECONDS
        return [turn for turn, owner in rows if _is_orphan(turn, owner, alive, cutoff)]

    async def close(self) -> None:
        """Stop checking, sign off (our unfinished turns are orphans at once), release
        the lock. After `drain`: answers in flight stay ours until then."""
        if not self._started:
            return
        self._started = False
        await self._tasks.stop()
        try:
            await self._store.sign_off(self._instance_id)
        except Exception:  # the database may be what failed; the lock still tells
            log.exception("could not record this process as stopped")
        try:
            await self._store.release_process_lock(self._instance_id)
        except Exception:
            log.exception("could not release the process lock")

    async def _keep_lock(self) -> None:
        """A lock found lost (its connection dropped) is taken again, and this process
        recorded as running again (another may have signed it off meanwhile)."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                if not await self._store.keep_process_lock(self._instance_id):
                    await self._store.register_owner(self._instance_id)
            except StoreError as exc:  # a database hiccup: try again next time
                log.warning("could not check the process lock: %s", exc)


def _judged_by_lock(owner: OwnerRecord) -> bool:
    return owner.holds_lock and not owner.stopped


def _is_orphan(turn: Turn, owner: OwnerRecord | None, alive: set[str], cutoff: float) -> bool:
    if turn.owner is None:
        return True  # from before owners were recorded
    if owner is None:
        return turn.updated_at < cutoff  # an old bridge that has not beaten yet
    if owner.stopped:
        return True
    if owner.holds_lock:
        return turn.owner not in alive
    return owner.last_seen < cutoff  # an old bridge: judged by its heartbeats
