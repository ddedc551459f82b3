"""A fake clock: deterministic time for tests and benchmarks of the renderer (nothing
really waits). The failure-scripted surface that notes call times on it is
`bridge.testing.recording_surface.ScriptedSurface`."""

from __future__ import annotations

import asyncio
import heapq
import itertools


async def settle() -> None:
    """Let every ready task run until it blocks again (in-memory calls never block)."""
    for _ in range(50):
        await asyncio.sleep(0)


class FakeClock:
    """A monotonic clock that only moves when told to, and a `sleep` that waits for it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order and letting them run."""
        await self.advance_to(self.now + seconds)

    async def advance_to(self, target: float) -> None:
        """Like `advance`, to an absolute time (no float drift from summed steps)."""
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            if not future.done():
                future.set_result(None)
            await settle()
        self.now = target
        await settle()
