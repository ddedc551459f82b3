"""The per-workspace token bucket, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.pacing import Priority, TokenBucket
from bridge.slack.budget import (
    STREAM,
    STREAM_START,
    STREAM_STOP,
    UPDATE,
    SlackRates,
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


async def grant_order(bucket: TokenBucket, t: FakeTime, arrivals: list[Priority]) -> list[str]:
    """Start one waiter per priority in `arrivals` order; return `name@time` as granted."""
    granted: list[str] = []

    async def waiter(number: int, priority: Priority) -> None:
        await bucket.acquire(priority)
        granted.append(f"{priority.name}{number}@{t.now:g}")

    await asyncio.gather(*(waiter(n, p) for n, p in enumerate(arrivals)))
    return granted


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 1, clock=t.clock, sleep=t.sleep)
    assert await bucket.acquire()  # the burst is spent: everyone below waits
    arrivals = [Priority.PROGRESS, Priority.FINAL, Priority.FIRST_TEXT, Priority.FINAL]
    assert await grant_order(bucket, t, arrivals) == [
        "FINAL1@1",
        "FINAL3@2",
        "FIRST_TEXT2@3",
        "PROGRESS0@4",
    ]


async def test_a_priority_read_at_grant_time_follows_the_answer() -> None:
    """A first-words call whose answer ends while it waits is served as a final."""
    t = FakeTime()
    bucket = TokenBucket(60.0, 1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    ended = False
    order: list[str] = []

    async def call(name: str, priority: Priority | Callable[[], Priority]) -> None:
        await bucket.acquire(priority)
        order.append(name)

    first = asyncio.create_task(call("first words", Priority.FIRST_TEXT))
    late = asyncio.create_task(
        call("late-bound", lambda: Priority.FINAL if ended else Priority.PROGRESS)
    )
    await asyncio.sleep(0)
    ended = True
    await asyncio.gather(first, late)
    assert order == ["late-bound", "first words"]


async def test_a_later_final_overtakes_calls_already_waiting() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    order: list[str] = []

    async def call(name: str, priority: Priority) -> None:
        await bucket.acquire(priority)
        order.append(name)

    waiting = [asyncio.create_task(call(f"first{n}", Priority.FIRST_TEXT)) for n in range(3)]
    await asyncio.sleep(0)  # they are queued before the final arrives
    await call("final", Priority.FINAL)
    await asyncio.gather(*waiting)
    assert order == ["final", "first0", "first1", "first2"]


async def test_a_caller_out_of_patience_gives_up_without_spending_a_token() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    assert not await bucket.acquire(Priority.PROGRESS, within=0.5)
    assert t.now == 0.5
    assert await bucket.acquire()
    assert t.now == 1.0  # the token due at 1 s was still there


async def test_patience_counts_while_higher_priorities_take_the_tokens() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    finals = [asyncio.create_task(bucket.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not await bucket.acquire(Priority.PROGRESS, within=2.5)  # 3 finals ahead
    assert all(await asyncio.gather(*finals))
    assert t.now == 3.0


async def test_a_cancelled_waiter_spends_nothing() -> None:
    t = FakeTime()
    bucket = TokenBucket(60.0, 1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    cancelled = asyncio.create_task(bucket.acquire(Priority.FIRST_TEXT))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert await bucket.acquire()
    assert t.now == 1.0
    assert await bucket.acquire()
    assert t.now == 2.0


async def test_mixed_priorities_keep_within_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(120.0, 2, clock=t.clock, sleep=t.sleep)  # 2/s, burst 2
    stamps: list[float] = []

    async def caller(priority: Priority) -> None:
        for _ in range(5):
            await bucket.acquire(priority)
            stamps.append(t.now)

    await asyncio.gather(*(caller(Priority(n % 3)) for n in range(9)))
    assert len(stamps) == 45
    assert max_in_window(stamps, 1.0) <= 2 + 2
