"""`TaskOwner`: tasks that cannot vanish — held, named, failures logged, ended by stop."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from bridge.tasks import TaskOwner


async def test_a_failing_task_is_logged_with_its_owner_and_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskOwner("relay")

    async def broken() -> None:
        raise RuntimeError("boom")

    task = tasks.spawn(broken(), name="answer-42")
    with caplog.at_level(logging.ERROR, logger="bridge.tasks"):
        await asyncio.wait({task})
        await asyncio.sleep(0)  # the done-callback runs after the waiters wake
    [record] = caplog.records
    assert record.getMessage() == "relay task answer-42 failed"
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])
    assert len(tasks) == 0


async def test_a_spawned_task_is_held_until_it_ends() -> None:
    """asyncio keeps only weak references to tasks: the owner's is what keeps it."""
    tasks = TaskOwner("test")
    finished = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    tasks.spawn(work(), name="unreferenced")  # the caller drops the task at once
    gc.collect()
    async with asyncio.timeout(5):
        await finished.wait()


async def test_stop_cancels_and_awaits_also_tasks_spawned_while_stopping() -> None:
    """Nothing the owner started is left running once `stop` returns, including a task
    one of them started while it was being cancelled (a question arriving late)."""
    tasks = TaskOwner("test")
    late: list[asyncio.Task[None]] = []
    cleaned_up = asyncio.Event()

    async def long_running() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            late.append(tasks.spawn(asyncio.sleep(3600), name="late"))
            cleaned_up.set()

    tasks.spawn(long_running(), name="long")
    await asyncio.sleep(0)
    assert await tasks.stop() == 2
    assert cleaned_up.is_set() and late[0].cancelled() and len(tasks) == 0


async def test_wait_waits_for_tasks_spawned_meanwhile_and_returns_at_its_bound() -> None:
    tasks = TaskOwner("test")
    gate = asyncio.Event()

    async def first() -> None:
        tasks.spawn(gate.wait(), name="second")

    tasks.spawn(first(), name="first")
    await tasks.wait(within=0.05)  # bounded: "second" still waits for the gate
    assert len(tasks) == 1
    gate.set()
    await tasks.wait()
    assert len(tasks) == 0
