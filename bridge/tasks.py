"""One owner for a set of background tasks, so none can vanish.

asyncio keeps only a weak reference to a task: one nobody holds can be garbage-collected
mid-run, and its exception is reported (if ever) long after, without context. Every
background task in the bridge is started through a `TaskOwner`, which keeps it until it
ends, names it, logs how it failed, and cancels and awaits what is left on `stop`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskOwner:
    """A TaskGroup that does not wait: `spawn` returns at once, `stop` ends the rest.

    Unlike `asyncio.TaskGroup`, one failing task does not cancel its siblings (one
    failed answer must not end the others); the failure is logged instead.

    Args:
        owner: who owns the tasks, for log lines ("relay", "slack", …).
    """

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run `work` in the background, held until it ends."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def __len__(self) -> int:
        """Tasks still running."""
        return len(self._tasks)

    async def wait(self, within: float | None = None) -> None:
        """Wait up to `within` seconds (None: no bound) for every task, including ones
        spawned meanwhile; failures are already logged, so none is raised here."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._tasks), timeout=left)

    async def stop(self) -> int:
        """Cancel the tasks still running and wait until they have ended (each handles
        its own cancellation, e.g. an answer saying it was interrupted), also tasks
        spawned while they ended. Returns how many were cancelled."""
        cancelled = 0
        while pending := set(self._tasks):
            for task in pending:
                task.cancel()
            cancelled += len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        return cancelled

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s task %s failed", self._owner, task.get_name(), exc_info=error)
