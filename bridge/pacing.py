"""Token buckets that serve waiting calls by priority: the pacing both platforms share.

A platform limits calls per time window; every answer in flight takes its turn from the
same bucket, so many answers pace themselves instead of each retrying 429s. Waiting calls
are served by `Priority`, read again at every grant (a call that waits while its answer
ends is served as a final), then in arrival order. `bridge.slack.budget` holds Slack's
buckets per workspace and method, `bridge.discord.pacing` Discord's one per bot.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum

from bridge.surface import EditKind
from bridge.tasks import TaskOwner


class Priority(IntEnum):
    """Which waiting call a freed token goes to: lower first, arrival order within one.

    Finals come first: under saturation a final both ends an answer and frees its slot,
    while first words served before it would cost a second edit of that answer later
    (a first-words call still waiting when its answer ends simply becomes the final, so
    most answers then cost one edit, not two). Progress edits come last: one that waits
    only means an answer updates less often, and it carries the newest text when served.
    """

    FINAL = 0  # an answer's last edit, and any call not marked otherwise
    FIRST_TEXT = 1  # the edit that replaces a placeholder with the first answer words
    PROGRESS = 2  # an intermediate edit of text already showing, or a status line


Rank = Priority | Callable[[], Priority]


@dataclass
class _Waiter:
    rank: Rank
    arrival: int
    deadline: float
    granted: asyncio.Future[bool]

    def order(self) -> tuple[int, int]:
        priority = self.rank() if callable(self.rank) else self.rank
        return int(priority), self.arrival


class TokenBucket:
    """An async token bucket serving waiters by `Priority`, then in arrival order.

    In any window of `w` seconds at most `burst + w * rate_per_minute / 60` calls pass.
    The bucket hands tokens out itself (a timer wakes it when the next one is due or a
    waiter's patience ends), so a caller arriving later with a higher priority overtakes
    those already waiting; a waiter's priority may be a function, read at every grant
    (few calls wait at once, so finding the first is a scan, not a heap).
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._seconds_per_token = 60.0 / rate_per_minute
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: list[_Waiter] = []
        self._arrivals = itertools.count()
        self._timers = TaskOwner("budget")
        self._timer: asyncio.Task[None] | None = None
        self._timer_due = math.inf

    async def acquire(self, priority: Rank = Priority.FINAL, *, within: float = math.inf) -> bool:
        """Wait until a call may be made and spend one token (True), or give up after
        `within` seconds without spending one (False). A caller cancelled while waiting
        spends nothing either. `priority` may be a function (read at every grant)."""
        if not self._waiters and self._take():
            return True
        loop = asyncio.get_running_loop()
        deadline = self._clock() + within
        waiter = _Waiter(priority, next(self._arrivals), deadline, loop.create_future())
        self._waiters.append(waiter)
        self._serve()
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            self._withdraw(waiter)
            raise

    def refund(self) -> None:
        """Give back a token `acquire` granted that the caller will not use (it won a
        race on another bucket), for the next waiter."""
        self._tokens = min(self._capacity, self._tokens + 1.0)
        self._serve()

    def try_acquire(self) -> bool:
        """Spend a token only if one is free right now (nobody waiting, not paused)."""
        return not self._waiters and self._take()

    def pause(self, seconds: float) -> None:
        """Slack said 429: nobody in this workspace calls again for `seconds`, and the
        burst allowance restarts empty so the resumption is gentle."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._refill(now)
        self._tokens = 0.0

    def _refill(self, now: float) -> None:
        # Nothing accrues while paused: after a 429 the budget restarts from empty.
        since = max(self._updated, self._paused_until)
        if now > since:
            earned = (now - since) / self._seconds_per_token
            self._tokens = min(self._capacity, self._tokens + earned)
        self._updated = max(self._updated, now)

    def _take(self) -> bool:
        now = self._clock()
        self._refill(now)
        if now < self._paused_until or self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _serve(self) -> None:
        """Grant free tokens to the first waiters, turn away those out of patience, and
        if any are left, wake when the next token is due or the next patience ends."""
        self._waiters = [w for w in self._waiters if not w.granted.done()]
        while self._waiters and self._take():
            head = min(self._waiters, key=_Waiter.order)
            self._waiters.remove(head)
            head.granted.set_result(True)
        now = self._clock()
        self._expire(now)
        if self._waiters:
            self._wake_at(min(self._next_token_at(now), *(w.deadline for w in self._waiters)))

    def _expire(self, now: float) -> None:
        waiting = []
        for waiter in self._waiters:
            if waiter.deadline > now:
                waiting.append(waiter)
            elif not waiter.granted.done():
                waiter.granted.set_result(False)
        self._waiters = waiting

    def _next_token_at(self, now: float) -> float:
        self._refill(now)
        shortfall = (1.0 - self._tokens) * self._seconds_per_token
        return max(self._paused_until, now + shortfall)

    def _wake_at(self, due: float) -> None:
        if self._timer is not None and self._timer_due <= due:
            return
        self._cancel_timer()
        self._timer_due = due
        # A timer that died would leave its waiters waiting: the owner logs how it failed.
        self._timer = self._timers.spawn(
            self._wake(max(due - self._clock(), 0.0)), name="budget-timer"
        )

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        self._timer_due = math.inf
        if timer is not None:
            timer.cancel()

    async def _wake(self, delay: float) -> None:
        await self._sleep(delay)
        self._timer, self._timer_due = None, math.inf
        self._serve()

    def _withdraw(self, waiter: _Waiter) -> None:
        """Forget a cancelled waiter; a token granted in the same instant goes back."""
        if waiter.granted.done() and not waiter.granted.cancelled() and waiter.granted.result():
            self._tokens = min(self._capacity, self._tokens + 1.0)
        elif waiter in self._waiters:
            self._waiters.remove(waiter)
        if not self._waiters:
            self._cancel_timer()
        self._serve()


KIND_PRIORITY: dict[EditKind, Priority] = {
    EditKind.STATUS: Priority.PROGRESS,
    EditKind.FIRST_WORDS: Priority.FIRST_TEXT,
    EditKind.PROGRESS: Priority.PROGRESS,
    EditKind.FINAL: Priority.FINAL,
    EditKind.NOTICE: Priority.FINAL,
}


def priority_of(kind: EditKind) -> Priority:
    """How urgent a call of `kind` is: status lines and progress only make an answer
    update less often when they wait, endings never should."""
    return KIND_PRIORITY[kind]
