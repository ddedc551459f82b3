"""The per-workspace token bucket, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

from bridge.slack.budget import (
    STREAM,
    STREAM_START,
    STREAM_STOP,
    UPDATE,
    SlackRates,
    TokenBucket,
    WorkspaceBudgets,
)


class FakeTime:
    """A clock whose sleep advances it; records each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def max_in_window(stamps: list[float], window: float) -> int:
    return max(sum(1 for t in stamps if start <= t < start + window) for start in stamps)


async def test_burst_passes_at_once_then_calls_are_paced() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 3, clock=t.clock, sleep=t.sleep)  # one per second, burst 3
    stamps = []
    for _ in range(8):
        await bucket.acquire()
        stamps.append(t.now)
    assert stamps[:3] == [0.0, 0.0, 0.0]
    assert stamps[3:] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_concurrent_waiters_share_one_budget() -> None:
    t = FakeTime()
    bucket = TokenBucket(120.0, 2, clock=t.clock, sleep=t.sleep)  # 2/s, burst 2
    stamps: list[float] = []

    async def caller() -> None:
        for _ in range(5):
            await bucket.acquire()
            stamps.append(t.now)

    await asyncio.gather(*(caller() for _ in range(10)))
    assert len(stamps) == 50
    # In any 1-second window at most burst + rate * window calls pass.
    assert max_in_window(stamps, 1.0) <= 2 + 2


async def test_pause_blocks_everyone_and_empties_the_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 5, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    bucket.pause(7.0)
    await bucket.acquire()
    assert t.now >= 7.0
    before = t.now
    await bucket.acquire()
    assert t.now - before >= 1.0  # no burst right after a 429


def test_budgets_are_per_workspace_and_kind() -> None:
    budgets = WorkspaceBudgets(SlackRates(update_per_minute=10, update_burst=1))
    assert budgets.bucket("T1", UPDATE) is budgets.bucket("T1", UPDATE)
    assert budgets.bucket("T1", UPDATE) is not budgets.bucket("T2", UPDATE)
    assert budgets.bucket("T1", UPDATE) is not budgets.bucket("T1", STREAM)


async def test_try_acquire_never_waits() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 2, clock=t.clock, sleep=t.sleep)
    assert bucket.try_acquire() and bucket.try_acquire()
    assert not bucket.try_acquire()  # burst spent
    t.now += 1.0
    assert bucket.try_acquire()  # one refilled
    bucket.pause(5.0)
    t.now += 4.0
    assert not bucket.try_acquire()  # still paused
    assert t.sleeps == []


def test_stream_starts_and_stops_have_their_own_tier_2_budgets() -> None:
    budgets = WorkspaceBudgets(SlackRates(stream_edge_per_minute=18, stream_edge_burst=1))
    start, stop = budgets.bucket("T1", STREAM_START), budgets.bucket("T1", STREAM_STOP)
    assert start is not stop
    assert start.try_acquire() and not start.try_acquire()
    assert stop.try_acquire()  # a spent start budget leaves stops alone
    assert budgets.bucket("T1", STREAM).try_acquire()
