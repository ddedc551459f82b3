"""Per-thread ordering and the global concurrency cap.

Questions in one thread are answered one after another (the backend conversation is a
chain: each answer continues the previous one); across threads at most
`BRIDGE_MAX_CONCURRENCY` answers stream at once, the rest wait visibly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bridge.model import ThreadKey

QUEUED_STATUS = "Queued — waiting for a free slot…"
WAITING_STATUS = "Waiting for the previous answer in this thread…"


class Ordering:
    """Turns wait here for their thread, then for a free slot."""

    def __init__(self, max_concurrency: int) -> None:
        self._threads = _ThreadLocks()
        self._slots = asyncio.Semaphore(max_concurrency)

    def waiting_status(self, thread: ThreadKey) -> str | None:
        """The placeholder text when an answer in `thread` cannot start right away."""
        if self._threads.is_busy(thread):
            return WAITING_STATUS
        if self._slots.locked():
            return QUEUED_STATUS
        return None

    @contextlib.asynccontextmanager
    async def turn(self, thread: ThreadKey) -> AsyncIterator[None]:
        """Hold `thread` and one slot for the block (waiting for both, thread first, so a
        queued follow-up never takes a slot from another thread's answer)."""
        async with self._threads.hold(thread), self._slots:
            yield


class _ThreadLocks:
    """One lock per thread, dropped when nobody holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._locks: dict[ThreadKey, asyncio.Lock] = {}
        self._users: dict[ThreadKey, int] = {}

    def is_busy(self, thread: ThreadKey) -> bool:
        return self._users.get(thread, 0) > 0

    @contextlib.asynccontextmanager
    async def hold(self, thread: ThreadKey) -> AsyncIterator[None]:
        lock = self._locks.setdefault(thread, asyncio.Lock())
        self._users[thread] = self._users.get(thread, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[thread] -= 1
            if not self._users[thread]:
                del self._users[thread]
                del self._locks[thread]
