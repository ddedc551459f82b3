"""Liveness: proves to other processes on the same database that this one is alive.

Processes record a heartbeat every `HEARTBEAT_SECONDS`; one silent for
`OWNER_TIMEOUT_SECONDS` (three missed beats, so a slow database write or a GC pause is
not taken for a crash), or signed off, has its unfinished turns recovered by the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.store import Store
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
OWNER_TIMEOUT_SECONDS = 45.0


class Heartbeat:
    """Beats from `start` until `close`; calls `on_beat` after each beat (the recovery
    sweep, which must run beside the beat, never inside it: a late beat would make other
    processes take this one for dead and interrupt its live answers)."""

    def __init__(
        self,
        store: Store,
        *,
        instance_id: str,
        interval: float,
        on_beat: Callable[[], None],
    ) -> None:
        self._store = store
        self._instance_id = instance_id
        self._interval = interval
        self._on_beat = on_beat
        self._tasks = TaskOwner("heartbeat")
        self.started = False

    async def start(self) -> None:
        """Record this process as alive before any question is claimed."""
        await self._store.heartbeat(self._instance_id)
        self._tasks.spawn(self._beat(), name="relay-heartbeat")
        self.started = True

    async def close(self) -> None:
        """Stop beating and sign off, so other processes recover what is left at once."""
        if not self.started:
            return
        self.started = False
        await self._tasks.stop()
        try:
            await self._store.sign_off(self._instance_id)
        except Exception:  # the database may be what failed; its turns then time out
            log.exception("could not record this process as stopped")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._store.heartbeat(self._instance_id)
            except Exception:  # a database hiccup must not stop the beat: next time
                log.exception("heartbeat failed")
                continue
            self._on_beat()
