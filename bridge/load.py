"""How busy this process's event loop is, so progress edits can yield to first words.

Every streaming answer edits its reply about once per `BRIDGE_EDIT_INTERVAL`. With
hundreds of answers at once those progress edits are most of the loop's work, and while
the loop is saturated every callback waits in line: the first words of a new answer and
the finals of ending ones wait behind edits that only refresh text people already see.
`LoopLoad` samples the loop thread's CPU time, and how late its own timer fires, a few
times a second; `stretch()` turns that into a factor for the progress interval (1 while
the loop is mostly idle, up to `MAX_STRETCH` when it is saturated). First words, finals
and notices never wait for it (`bridge.render`), and a lightly loaded process (one
question, or a hundred at once on a small dyno) never sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bridge import metrics
from bridge.tasks import TaskOwner

SAMPLE_SECONDS = 0.25
# Below this share of one core the loop answers callbacks promptly: no stretch.
CALM_PRESSURE = 0.4
# At this share (or a timer this many sample periods late) the stretch is at its largest.
SATURATED_PRESSURE = 0.8
MAX_STRETCH = 4.0
# Each sample moves the smoothed pressure this far towards the newest reading, so one
# busy quarter-second does not slow edits down and a lasting load does within a second.
SMOOTHING = 0.35


def stretch_for(pressure: float) -> float:
    """The progress-interval factor for a loop `pressure` (0 idle, 1 saturated):
    1 up to `CALM_PRESSURE`, rising linearly to `MAX_STRETCH` at `SATURATED_PRESSURE`."""
    share = (pressure - CALM_PRESSURE) / (SATURATED_PRESSURE - CALM_PRESSURE)
    return 1.0 + (MAX_STRETCH - 1.0) * min(max(share, 0.0), 1.0)


class LoopLoad:
    """Samples the running loop's pressure while started; `stretch()` reads it.

    Pressure is the larger of the loop thread's CPU share since the last sample and how
    late the sampling timer woke (in sample periods): the first shows the bridge's own
    work, the second a loop starved by other processes on the machine.

    Args:
        interval: seconds between samples.
        cpu_clock, wall_clock: the loop thread's CPU time and a monotonic clock
            (tests pass scripted ones).
    """

    def __init__(
        self,
        *,
        interval: float = SAMPLE_SECONDS,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._pressure = 0.0
        self._tasks = TaskOwner("loop load")

    @property
    def pressure(self) -> float:
        """The smoothed pressure, 0 (idle) to 1 (saturated)."""
        return self._pressure

    def stretch(self) -> float:
        """The factor progress edits stretch their interval by now."""
        return stretch_for(self._pressure)

    def start(self) -> None:
        """Sample in the background until `stop` (on the running loop's thread)."""
        if not len(self._tasks):
            self._tasks.spawn(self._sample_forever(), name="loop-load")

    async def stop(self) -> None:
        await self._tasks.stop()
        self._pressure = 0.0

    def observe(self, cpu_seconds: float, wall_seconds: float, late_seconds: float) -> None:
        """Fold in one sample: the loop thread's CPU time and the wall time since the
        previous one, and how late the timer that took it fired."""
        if wall_seconds <= 0:
            return
        reading = min(max(cpu_seconds / wall_seconds, late_seconds / self._interval), 1.0)
        self._pressure += SMOOTHING * (reading - self._pressure)
        metrics.LOOP_PRESSURE.set(self._pressure)

    async def _sample_forever(self) -> None:
        cpu, wall = self._cpu_clock(), self._wall_clock()
        while True:
            await asyncio.sleep(self._interval)
            new_cpu, new_wall = self._cpu_clock(), self._wall_clock()
            late = max(new_wall - wall - self._interval, 0.0)
            self.observe(new_cpu - cpu, new_wall - wall, late)
            cpu, wall = new_cpu, new_wall
