"""Loaded at start-up by the soak benchmark's bridge process (it is put on PYTHONPATH):
samples that process's event-loop lag, without changing the bridge.

Every event loop the process creates gets a task that sleeps `INTERVAL` and records how
much later than asked it woke up: the time a ready callback waited for the loop. At exit
the samples (monotonic time, lag in seconds) go to the JSON file named by
$BRIDGE_LOOP_LAG_FILE; `time.monotonic` is the system-wide clock, so the benchmark can
keep the samples of its measuring window.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import time

INTERVAL = 0.01
_samples: list[tuple[float, float]] = []


async def _sample() -> None:
    while True:
        asked = time.monotonic() + INTERVAL
        await asyncio.sleep(INTERVAL)
        woke = time.monotonic()
        _samples.append((woke, max(woke - asked, 0.0)))


class _SamplingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        tasks: set[asyncio.Task[None]] = set()
        loop.call_soon(lambda: tasks.add(loop.create_task(_sample(), name="loop-lag-sample")))
        return loop


def _write() -> None:
    path = os.environ.get("BRIDGE_LOOP_LAG_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(_samples, out)


if os.environ.get("BRIDGE_LOOP_LAG_FILE"):
    asyncio.set_event_loop_policy(_SamplingPolicy())
    atexit.register(_write)
