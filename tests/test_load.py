"""LoopLoad: how busy the event loop is, and the progress-edit stretch it implies."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge import metrics
from bridge.load import MAX_STRETCH, LoopLoad, stretch_for


@pytest.mark.parametrize(
    ("pressure", "stretch"), [(0.0, 1.0), (0.4, 1.0), (0.6, 2.5), (0.8, 4.0), (1.0, 4.0)]
)
def test_stretch_is_one_while_calm_and_grows_to_the_maximum(
    pressure: float, stretch: float
) -> None:
    assert stretch_for(pressure) == pytest.approx(stretch)


def test_pressure_follows_cpu_share_smoothed() -> None:
    load = LoopLoad(interval=0.25)
    load.observe(cpu_seconds=0.25, wall_seconds=0.25, late_seconds=0.0)
    assert load.pressure == pytest.approx(0.35)
    assert load.stretch() == 1.0  # one busy quarter-second does not slow edits down
    for _ in range(4):
        load.observe(cpu_seconds=0.25, wall_seconds=0.25, late_seconds=0.0)
    assert load.stretch() > 3.0  # a lasting saturation does, within about a second
    assert metrics.LOOP_PRESSURE._value.get() == pytest.approx(load.pressure)
    for _ in range(6):
        load.observe(cpu_seconds=0.01, wall_seconds=0.25, late_seconds=0.0)
    assert load.stretch() == 1.0


def test_a_late_timer_counts_as_pressure_even_without_our_cpu() -> None:
    """Other processes starving the loop show as lateness, not as our CPU time."""
    load = LoopLoad(interval=0.25)
    for _ in range(5):
        load.observe(cpu_seconds=0.0, wall_seconds=0.5, late_seconds=0.25)
    assert load.stretch() == MAX_STRETCH


async def test_a_blocked_loop_raises_the_stretch_and_stop_resets_it() -> None:
    load = LoopLoad(interval=0.02)
    load.start()
    deadline = time.monotonic() + 10.0
    while load.stretch() < MAX_STRETCH and time.monotonic() < deadline:
        time.sleep(0.05)  # noqa: ASYNC251 (on purpose: the loop is blocked, its sampler late)
        await asyncio.sleep(0)
    assert load.stretch() > 3.0
    await load.stop()
    assert load.stretch() == 1.0
